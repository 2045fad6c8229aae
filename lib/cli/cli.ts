/**
 * What every script shares: argv parsing with `--help`, the one error handler that prints a clear
 * line and exits with the contract's code, signal handling, and the production confirmation.
 * Kept light (node built-ins only) so `--help` starts fast; scripts import heavy modules lazily.
 */
import { StringDecoder } from 'node:string_decoder';
import { parseArgs } from 'node:util';
import { knownSecretStartAtEnd, knowsSecrets, redactKnown } from '../core/cmd.ts';
import { EXIT, SkiffError, UsageError } from '../core/errors.ts';

export interface FlagSpec {
  readonly type: 'boolean' | 'string';
  readonly short?: string;
  /** What `--help` shows after a string flag (default `<value>`): `SECONDS`, `N`. */
  readonly value?: string;
  readonly description: string;
}

/**
 * The flags that mean the same in every script (issue 16). Each script offers one of these exactly
 * as defined here (`shared(...)`), or names it in `notOffered` with the reason its `--help` prints;
 * given anyway, it stops the script with exit 2 and that reason.
 */
export const SHARED_FLAGS = {
  yes: { type: 'boolean', short: 'y', description: 'do not ask for confirmation; without a terminal a question is refused unless --yes is given' },
  'dry-run': { type: 'boolean', description: 'show what would change, and change nothing' },
  json: { type: 'boolean', description: 'print the result on stdout as JSON instead of text (after any progress lines)' },
  'force-unlock': { type: 'boolean', description: 'break a deploy lock whose holder is gone or has not shown a heartbeat for a minute' },
  'lock-wait': { type: 'string', value: 'SECONDS', description: 'wait up to SECONDS for the command holding the deploy lock to finish (default: refuse at once, exit 3)' },
} as const satisfies Record<string, FlagSpec>;

export type SharedFlag = keyof typeof SHARED_FLAGS;

/** Offered by every script, like --help: nothing to decide per script. */
export const VERBOSE = { type: 'boolean', short: 'v', description: 'print the stack trace with an error' } as const satisfies FlagSpec;

/** The shared flags a script offers, by name, exactly as SHARED_FLAGS defines them. */
export const shared = <K extends SharedFlag>(...names: readonly K[]): Pick<typeof SHARED_FLAGS, K> =>
  Object.fromEntries(names.map((n) => [n, SHARED_FLAGS[n]])) as Pick<typeof SHARED_FLAGS, K>;

export interface CommandSpec<F extends Record<string, FlagSpec>> {
  readonly name: string;
  readonly summary: string;
  /** e.g. `<env> [<release>]` */
  readonly usage: string;
  /** Names of the positional arguments, required ones first. */
  readonly positionals: readonly { readonly name: string; readonly required: boolean; readonly description: string }[];
  readonly flags: F;
  /** Every shared flag the script does not offer, with why: `--help` prints it, and so does the refusal. */
  readonly notOffered: { readonly [K in Exclude<SharedFlag, keyof F>]: string };
  readonly examples?: readonly string[];
}

/** Declares a script's spec: the type checks that every shared flag is either offered or refused with a reason. */
export const command = <const F extends Record<string, FlagSpec>>(spec: CommandSpec<F>): CommandSpec<F> => spec;

export type Flags<F extends Record<string, FlagSpec>> = {
  [K in keyof F]: F[K]['type'] extends 'boolean' ? boolean : string | undefined;
};

export interface Parsed<F extends Record<string, FlagSpec>> {
  readonly args: readonly string[];
  readonly flags: Flags<F>;
}

/** The shared flags a spec does not offer, with their reasons (the type lets TypeScript see them as strings). */
export const notOfferedOf = (spec: CommandSpec<Record<string, FlagSpec>>): [SharedFlag, string][] =>
  Object.entries(spec.notOffered as Record<string, string>) as [SharedFlag, string][];

/**
 * A spec that breaks the rule of the shared flags is a bug in skiff, not a usage error: a shared flag
 * redefined, neither offered nor refused, or both; a reason missing; --verbose or -v taken.
 */
export const specProblems = (spec: CommandSpec<Record<string, FlagSpec>>): string[] => {
  const problems: string[] = [];
  const refused = new Map(notOfferedOf(spec));
  for (const name of Object.keys(SHARED_FLAGS) as SharedFlag[]) {
    const offered = spec.flags[name];
    if (offered && offered !== SHARED_FLAGS[name]) problems.push(`--${name} is not SHARED_FLAGS.${name}: offer it with shared('${name}')`);
    if (offered && refused.has(name)) problems.push(`--${name} is both offered and not offered`);
    if (!offered && !refused.get(name)?.trim()) problems.push(`--${name} is neither offered nor refused with a reason`);
  }
  for (const name of refused.keys()) if (!(name in SHARED_FLAGS)) problems.push(`notOffered names --${name}, which is not a shared flag`);
  if ('verbose' in spec.flags || Object.values(spec.flags).some((f) => f.short === VERBOSE.short || f.short === 'h')) {
    problems.push('--verbose, -v and -h are every script\'s: do not declare them');
  }
  return problems.map((p) => `${spec.name}: ${p}`);
};

const withVerbose = (flags: Record<string, FlagSpec>): Record<string, FlagSpec> => ({ ...flags, verbose: VERBOSE });

const COMMON_HELP = `Exit codes: 0 done; 1 failed (the target still serves a healthy version); 2 usage or configuration error, nothing touched; 3 locked by another deploy.`;

const flagLine = (name: string, f: FlagSpec): string => {
  const left = `  ${f.short ? `-${f.short}, ` : '    '}--${name}${f.type === 'string' ? ` ${f.value ?? '<value>'}` : ''}`;
  return `${left.padEnd(28)}${f.description}`;
};

/** The text of `--help`. */
export const helpText = <F extends Record<string, FlagSpec>>(spec: CommandSpec<F>): string => {
  const flagLines = Object.entries(withVerbose(spec.flags)).map(([name, f]) => flagLine(name, f));
  const argLines = spec.positionals.map((p) => `  ${p.name.padEnd(26)}${p.description}`);
  const refused = notOfferedOf(spec).map(([name, why]) => `  ${`--${name}`.padEnd(26)}${why}`);
  return [
    `${spec.summary}`,
    '',
    `Usage: npx tsx scripts/${spec.name}.ts ${spec.usage}`,
    '',
    ...(argLines.length ? ['Arguments:', ...argLines, ''] : []),
    'Options:',
    ...flagLines,
    `  ${'-h, --help'.padEnd(26)}show this help`,
    '',
    ...(refused.length ? ['Not offered (given, they stop the script: exit 2):', ...refused, ''] : []),
    ...(spec.examples?.length ? ['Examples:', ...spec.examples.map((e) => `  ${e}`), ''] : []),
    COMMON_HELP,
  ].join('\n');
};

/** The shared flag an option word names (`--json`, `--json=1`, `-y`), if any. */
const sharedNamed = (word: string): SharedFlag | undefined => {
  const name = word.startsWith('--') ? word.slice(2).split('=')[0] : undefined;
  const found = Object.entries(SHARED_FLAGS).find(([n, f]) => n === name || ('short' in f && word === `-${f.short}`));
  return found?.[0] as SharedFlag | undefined;
};

/** Parses argv against the spec; unknown flags, refused shared flags and missing arguments are UsageErrors. */
export const parseCommand = <F extends Record<string, FlagSpec>>(spec: CommandSpec<F>, argv: readonly string[]): Parsed<F> | 'help' => {
  const problems = specProblems(spec);
  if (problems.length) throw new Error(`bad command spec: ${problems.join('; ')}`);
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: Object.fromEntries(Object.entries(withVerbose(spec.flags)).map(([k, f]) => [k, { type: f.type, ...(f.short ? { short: f.short } : {}) }])),
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    const m = /Unknown option '([^']+)'/.exec((e as Error).message);
    const refused = m ? sharedNamed(m[1] as string) : undefined;
    const why = refused ? new Map(notOfferedOf(spec)).get(refused) : undefined;
    if (refused && why) throw new UsageError(`${spec.name} does not offer --${refused}: ${why}`);
    throw new UsageError(
      m ? `unknown option ${m[1]} for ${spec.name}: see \`npx tsx scripts/${spec.name}.ts --help\`` : `${(e as Error).message.split('\n')[0]}: see --help`,
    );
  }
  const required = spec.positionals.filter((p) => p.required);
  if (parsed.positionals.length < required.length) {
    throw new UsageError(`${spec.name} needs ${required.map((p) => p.name).join(' and ')}: usage: npx tsx scripts/${spec.name}.ts ${spec.usage}`);
  }
  if (parsed.positionals.length > spec.positionals.length) {
    throw new UsageError(`${spec.name}: unexpected argument ${JSON.stringify(parsed.positionals[spec.positionals.length])}: usage: npx tsx scripts/${spec.name}.ts ${spec.usage}`);
  }
  const flags = Object.fromEntries(
    Object.entries(spec.flags).map(([k, f]) => [k, parsed.values[k] ?? (f.type === 'boolean' ? false : undefined)]),
  ) as Flags<F>;
  return { args: parsed.positionals, flags };
};

/** Aborted by SIGINT/SIGTERM: steps check it at safe points and undo what they started. */
export const interrupted = new AbortController();

let installed = false;
const installSignals = (): void => {
  if (installed) return;
  installed = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (interrupted.signal.aborted) {
        process.stderr.write(`\n${sig} again: exiting now without undoing the current step\n`);
        process.exit(EXIT.failed);
      }
      process.stderr.write(`\n${sig}: stopping at the next safe point (send it again to exit at once)\n`);
      interrupted.abort(new SkiffError(`stopped by ${sig}`));
    });
  }
};

type Write = NodeJS.WriteStream['write'];

/**
 * Scrubs what is written to a stream of the secret values this process knows: the progress list,
 * plain lines, --json, a followed log and the error handler all write through it, so no layer has
 * to remember to. A secret split across writes (a followed log arrives in raw chunks) is caught
 * too: the end of a write that could be the start of a known secret is held back and written with
 * the next one, or by the flush this returns. Until a secret is known, chunks pass untouched.
 * Returns what flushes the held text and puts the stream back.
 */
export const redactOutput = (stream: NodeJS.WriteStream): (() => void) => {
  const original: Write = stream.write;
  const decoder = new StringDecoder('utf8');
  let held = '';
  const guarded = function (this: NodeJS.WriteStream, chunk: string | Uint8Array, ...rest: unknown[]): boolean {
    if (held === '' && !knowsSecrets()) {
      return Reflect.apply(original, this, [chunk, ...rest]);
    }
    // write(chunk, encoding?, callback?): the text goes out as UTF-8, so the encoding is used here.
    const encoding = typeof rest[0] === 'string' && Buffer.isEncoding(rest[0]) ? rest[0] : undefined;
    const text = held + (typeof chunk === 'string' ? (encoding && encoding !== 'utf8' && encoding !== 'utf-8' ? Buffer.from(chunk, encoding).toString() : chunk) : decoder.write(Buffer.from(chunk)));
    const safe = redactKnown(text);
    const keep = knownSecretStartAtEnd(safe);
    held = safe.slice(safe.length - keep);
    return Reflect.apply(original, this, [safe.slice(0, safe.length - keep), ...(encoding ? rest.slice(1) : rest)]);
  };
  // Both overloads of write take the chunk first and pass the rest on as given: so does `guarded`.
  stream.write = guarded as Write;
  return () => {
    const last = held + decoder.end();
    held = '';
    stream.write = original;
    if (last !== '') Reflect.apply(original, stream, [redactKnown(last)]);
  };
};

let outputGuarded = false;
const guardOutput = (): void => {
  if (outputGuarded) return;
  outputGuarded = true;
  const flushOut = redactOutput(process.stdout);
  const flushErr = redactOutput(process.stderr);
  // Whatever way the process ends (runMain's exit, a second signal), the held text goes out.
  process.once('exit', () => {
    flushOut();
    flushErr();
  });
};

/**
 * The one place a script exits. Prints `--help`, or runs `main` and maps errors to exit codes:
 * a SkiffError prints its message; anything else is a bug and prints its stack. Everything the
 * script writes to stdout and stderr is scrubbed of known secret values (`redactOutput`).
 */
export const runMain = async <F extends Record<string, FlagSpec>>(
  spec: CommandSpec<F>,
  main: (parsed: Parsed<F>) => Promise<number | void>,
  argv: readonly string[] = process.argv.slice(2),
): Promise<never> => {
  let code: number = EXIT.ok;
  // Before anything prints or a list captures the streams: every line after this is scrubbed.
  guardOutput();
  try {
    const parsed = parseCommand(spec, argv);
    if (parsed === 'help') {
      process.stdout.write(`${helpText(spec)}\n`);
    } else {
      installSignals();
      code = (await main(parsed)) ?? EXIT.ok;
    }
  } catch (error) {
    code = report(error, argv.includes('--verbose') || argv.includes('-v'));
  }
  // Let pending output flush before exiting.
  process.exitCode = code;
  await new Promise((resolve) => setImmediate(resolve));
  process.exit(code);
};

const report = (error: unknown, verbose: boolean): number => {
  const reason = interrupted.signal.aborted && !(error instanceof SkiffError) ? interrupted.signal.reason : error;
  if (reason instanceof SkiffError) {
    process.stderr.write(`error: ${reason.message}\n`);
    if (verbose && reason.stack) process.stderr.write(`${reason.stack}\n`);
    return reason.exitCode;
  }
  process.stderr.write(`error: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
  return EXIT.failed;
};

/** Asks before a production change. With no TTY it refuses unless --yes was given. */
export const confirm = async (question: string, yes: boolean): Promise<void> => {
  if (yes) return;
  if (!process.stdin.isTTY) throw new UsageError(`${question}: no terminal to ask on; pass --yes to confirm`);
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
  rl.close();
  if (answer !== 'y' && answer !== 'yes') throw new UsageError('cancelled: nothing was changed');
};

/** A usage error from a script's own argument checks. */
export const UsageErrorFor = (message: string): UsageError => new UsageError(message);
