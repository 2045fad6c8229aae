import { describe, expect, it } from 'vitest';
import { command, helpText, parseCommand, shared, SHARED_FLAGS, specProblems, type CommandSpec, type FlagSpec, type Parsed } from '../../lib/cli/cli.ts';
import { UsageError } from '../../lib/core/errors.ts';

const flags = {
  ...shared('yes'),
  fast: { type: 'boolean', description: 'skip the slow checks' },
  only: { type: 'string', description: 'deploy to this host only' },
} as const;

const spec: CommandSpec<typeof flags> = {
  name: 'deploy-vps',
  summary: 'Deploys the app to one environment.',
  usage: '<env> [<release>]',
  positionals: [
    { name: '<env>', required: true, description: 'the environment (env/<env>.env)' },
    { name: '<release>', required: false, description: 'a release id to deploy again' },
  ],
  flags,
  notOffered: { 'dry-run': 'it changes nothing', json: 'it prints a stream of lines', 'force-unlock': 'it takes no lock', 'lock-wait': 'it takes no lock' },
  examples: ['npx tsx scripts/deploy-vps.ts staging', 'npx tsx scripts/deploy-vps.ts production --yes'],
};

const parse = (argv: readonly string[]): Parsed<typeof flags> => {
  const parsed = parseCommand(spec, argv);
  if (parsed === 'help') throw new Error('unexpected help');
  return parsed;
};

const usageError = (argv: readonly string[]): UsageError => {
  try {
    parseCommand(spec, argv);
  } catch (e) {
    if (e instanceof UsageError) return e;
    throw e;
  }
  throw new Error(`expected a UsageError for ${JSON.stringify(argv)}`);
};

describe('parseCommand', () => {
  it.each<[string, string[], readonly string[], { yes: boolean; fast: boolean; only: string | undefined }]>([
    ['booleans default to false, strings to undefined', ['staging'], ['staging'], { yes: false, fast: false, only: undefined }],
    ['long boolean', ['staging', '--yes'], ['staging'], { yes: true, fast: false, only: undefined }],
    ['short boolean before the positional', ['-y', 'staging'], ['staging'], { yes: true, fast: false, only: undefined }],
    ['optional positional and a string flag', ['staging', 'r1', '--only', 'web-1'], ['staging', 'r1'], { yes: false, fast: false, only: 'web-1' }],
    ['string flag with =', ['staging', '--only=web 1'], ['staging'], { yes: false, fast: false, only: 'web 1' }],
    ['everything', ['--fast', 'production', '-y', 'r2'], ['production', 'r2'], { yes: true, fast: true, only: undefined }],
    ['-- ends the options', ['staging', '--', '--yes'], ['staging', '--yes'], { yes: false, fast: false, only: undefined }],
  ])('%s', (_name, argv, args, expectedFlags) => {
    const parsed = parse(argv);
    expect(parsed.args).toEqual(args);
    expect(parsed.flags).toEqual(expectedFlags);
  });

  it.each<[string, string[]]>([
    ['--help', ['--help']],
    ['-h', ['-h']],
    ['--help after an env', ['staging', '--help']],
    ['--help wins over an unknown flag', ['--bogus', '--help']],
    ['--help without the env', ['-h', '--yes']],
  ])('%s returns help', (_name, argv) => {
    expect(parseCommand(spec, argv)).toBe('help');
  });

  it.each<[string, string[], string]>([
    ['unknown long flag', ['staging', '--bogus'], 'unknown option --bogus for deploy-vps: see `npx tsx scripts/deploy-vps.ts --help`'],
    ['unknown short flag', ['-x', 'staging'], 'unknown option -x for deploy-vps: see `npx tsx scripts/deploy-vps.ts --help`'],
    ['a near miss', ['staging', '--yess'], 'unknown option --yess'],
    ['missing env', [], 'deploy-vps needs <env>: usage: npx tsx scripts/deploy-vps.ts <env> [<release>]'],
    ['missing env with flags', ['--yes'], 'deploy-vps needs <env>'],
    ['extra positional', ['staging', 'r1', 'extra'], 'deploy-vps: unexpected argument "extra": usage: npx tsx scripts/deploy-vps.ts <env> [<release>]'],
    ['string flag without its value', ['staging', '--only'], '--only'],
    ['boolean flag with a value', ['staging', '--yes=1'], '--yes'],
  ])('%s is a one-line UsageError', (_name, argv, message) => {
    const e = usageError(argv);
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain(message);
    expect(e.message).not.toContain('\n');
  });

  it.each<[string, string[]]>([
    ['unknown flag', ['staging', '--bogus']],
    ['flag value missing', ['staging', '--only']],
  ])('%s points to --help', (_name, argv) => {
    expect(usageError(argv).message).toContain('--help');
  });
});

describe('helpText', () => {
  const text = helpText(spec);
  const lines = text.split('\n');

  it.each<[string, string]>([
    ['summary first', 'Deploys the app to one environment.'],
    ['usage', 'Usage: npx tsx scripts/deploy-vps.ts <env> [<release>]'],
    ['required positional', `  ${'<env>'.padEnd(26)}the environment (env/<env>.env)`],
    ['optional positional', `  ${'<release>'.padEnd(26)}a release id to deploy again`],
    ['boolean flag without short form', `${'      --fast'.padEnd(28)}skip the slow checks`],
    ['--verbose, which every script offers', `${'  -v, --verbose'.padEnd(28)}print the stack trace with an error`],
    ['a shared flag with its one description', `${'  -y, --yes'.padEnd(28)}${SHARED_FLAGS.yes.description}`],
    ['a shared flag not offered, with why', `  ${'--json'.padEnd(26)}it prints a stream of lines`],
    ['string flag shows <value>', `${'      --only <value>'.padEnd(28)}deploy to this host only`],
    ['help flag', `  ${'-h, --help'.padEnd(26)}show this help`],
    ['examples', '  npx tsx scripts/deploy-vps.ts production --yes'],
  ])('%s', (_name, expected) => {
    expect(lines).toContain(expected);
  });

  it('starts with the summary and ends with the exit codes', () => {
    expect(lines[0]).toBe('Deploys the app to one environment.');
    expect(lines.at(-1)).toMatch(/^Exit codes: 0 done; 1 failed .*; 2 usage or configuration error, nothing touched; 3 locked by another deploy\.$/);
  });

  it('has no Arguments or Examples section when there are none', () => {
    const bare = helpText({ name: 'x', summary: 'S', usage: '', positionals: [], flags: shared('yes', 'dry-run', 'json', 'force-unlock', 'lock-wait'), notOffered: {} });
    expect(bare).not.toContain('Arguments:');
    expect(bare).not.toContain('Examples:');
    expect(bare).toContain('Options:');
  });
});

describe('shared flags', () => {
  it.each<[string, string[]]>([
    ['--verbose', ['staging', '--verbose']],
    ['-v', ['-v', 'staging']],
  ])('%s is accepted by every spec, declared or not', (_name, argv) => {
    expect(parse(argv).args).toEqual(['staging']);
  });

  it.each<[string, string[], string]>([
    ['a shared flag not offered', ['staging', '--json'], 'deploy-vps does not offer --json: it prints a stream of lines'],
    ['with a value', ['staging', '--lock-wait', '5'], 'deploy-vps does not offer --lock-wait: it takes no lock'],
    ['with =', ['staging', '--lock-wait=5'], 'deploy-vps does not offer --lock-wait: it takes no lock'],
  ])('%s is a one-line UsageError that names the reason', (_name, argv, message) => {
    const e = usageError(argv);
    expect(e.exitCode).toBe(2);
    expect(e.message).toBe(message);
  });

  it('-y not offered names --yes and the reason', () => {
    const s = command({ name: 'logs', summary: 'S', usage: '<env>', positionals: [], flags: {}, notOffered: { yes: 'it asks nothing', 'dry-run': 'r', json: 'r', 'force-unlock': 'r', 'lock-wait': 'r' } });
    expect(() => parseCommand(s, ['-y'])).toThrow('logs does not offer --yes: it asks nothing');
  });

  const bad = (flags: Record<string, FlagSpec>, notOffered: Record<string, string>) =>
    specProblems({ name: 'x', summary: 'S', usage: '', positionals: [], flags, notOffered } as CommandSpec<Record<string, FlagSpec>>);
  const rest = { 'dry-run': 'r', json: 'r', 'force-unlock': 'r', 'lock-wait': 'r' };

  it.each<[string, Record<string, FlagSpec>, Record<string, string>, string]>([
    ['a shared flag redefined', { yes: { type: 'boolean', description: 'go ahead' } }, rest, "x: --yes is not SHARED_FLAGS.yes: offer it with shared('yes')"],
    ['offered and refused', shared('yes'), { ...rest, yes: 'r' }, 'x: --yes is both offered and not offered'],
    ['neither', {}, rest, 'x: --yes is neither offered nor refused with a reason'],
    ['an empty reason', {}, { ...rest, yes: ' ' }, 'x: --yes is neither offered nor refused with a reason'],
    ['a reason for a flag that is not shared', shared('yes'), { ...rest, bogus: 'r' }, 'x: notOffered names --bogus, which is not a shared flag'],
    ['-v taken', { ...shared('yes'), vet: { type: 'boolean', short: 'v', description: 'vet' } }, rest, "x: --verbose, -v and -h are every script's: do not declare them"],
  ])('a spec with %s is a bug, refused before any argument is read', (_name, flags, notOffered, problem) => {
    expect(bad(flags, notOffered)).toContain(problem);
    expect(() => parseCommand({ name: 'x', summary: 'S', usage: '', positionals: [], flags, notOffered } as CommandSpec<Record<string, FlagSpec>>, ['--help'])).toThrow(problem);
  });

  it('a sound spec has no problems', () => {
    expect(specProblems(spec as CommandSpec<Record<string, FlagSpec>>)).toEqual([]);
  });
});
