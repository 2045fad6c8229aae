import { describe, expect, it } from 'vitest';
import { helpText, parseCommand, type CommandSpec, type Parsed } from '../../lib/cli/cli.ts';
import { UsageError } from '../../lib/core/errors.ts';

const flags = {
  yes: { type: 'boolean', short: 'y', description: 'deploy without asking' },
  verbose: { type: 'boolean', description: 'print stack traces' },
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
  it.each<[string, string[], readonly string[], { yes: boolean; verbose: boolean; only: string | undefined }]>([
    ['booleans default to false, strings to undefined', ['staging'], ['staging'], { yes: false, verbose: false, only: undefined }],
    ['long boolean', ['staging', '--yes'], ['staging'], { yes: true, verbose: false, only: undefined }],
    ['short boolean before the positional', ['-y', 'staging'], ['staging'], { yes: true, verbose: false, only: undefined }],
    ['optional positional and a string flag', ['staging', 'r1', '--only', 'web-1'], ['staging', 'r1'], { yes: false, verbose: false, only: 'web-1' }],
    ['string flag with =', ['staging', '--only=web 1'], ['staging'], { yes: false, verbose: false, only: 'web 1' }],
    ['everything', ['--verbose', 'production', '-y', 'r2'], ['production', 'r2'], { yes: true, verbose: true, only: undefined }],
    ['-- ends the options', ['staging', '--', '--yes'], ['staging', '--yes'], { yes: false, verbose: false, only: undefined }],
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
    ['boolean flag with short form', `${'  -y, --yes'.padEnd(28)}deploy without asking`],
    ['boolean flag without short form', `${'      --verbose'.padEnd(28)}print stack traces`],
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
    const bare = helpText({ name: 'x', summary: 'S', usage: '', positionals: [], flags: {} });
    expect(bare).not.toContain('Arguments:');
    expect(bare).not.toContain('Examples:');
    expect(bare).toContain('Options:');
  });
});
