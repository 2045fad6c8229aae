#!/usr/bin/env -S npx tsx
/**
 * Runs a command in the live release of an environment with the app's environment, its output
 * streamed here, and exits with the command's status (docs/exec.md). One word after `--` is a shell
 * command line; several are a command and its arguments, each passed as it was typed. `--db` opens
 * the database console instead (the words after `--` go to sqlite3 or psql).
 */
import { runMain, UsageErrorFor } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';

const argv = process.argv.slice(2);
const dashes = argv.indexOf('--');
const own = dashes < 0 ? argv : argv.slice(0, dashes);
const words = dashes < 0 ? [] : argv.slice(dashes + 1);

await runMain(
  specs.exec,
  async ({ args: [env], flags }) => {
    const { execWords } = await import('../lib/commands/exec.ts');
    const w = execWords(words);
    if (!w && !flags.db) throw UsageErrorFor(`exec needs a command after --: e.g. npx tsx scripts/exec.ts ${env} -- ls -la`);
    if (flags.tty && !process.stdin.isTTY) throw UsageErrorFor('--tty needs a terminal on stdin: run exec without --tty, or from a terminal');
    const seconds = flags.timeout === undefined ? (flags.tty ? 0 : 3600) : /^\d{1,7}$/.test(flags.timeout) ? Number(flags.timeout) : Number.NaN;
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > 2_000_000) throw UsageErrorFor(`--timeout takes whole seconds (0: no deadline), not ${JSON.stringify(flags.timeout)}`);
    const timeoutMs = seconds === 0 ? Number.POSITIVE_INFINITY : seconds * 1000;

    const { prepareRun } = await import('../lib/cli/run.ts');
    const { pickTargets, planExec, planDbConsole, dryRunLine, streamExec, ttyExec, overallCode } = await import('../lib/flows/exec.ts');
    const { say } = await import('../lib/cli/ui.ts');
    // Not prepareRun's dry run: the plan reads each host for real, and nothing is run.
    const run = await prepareRun(env as string, { command: 'exec', needsVersion: false, hosts: (cfg) => pickTargets(cfg, { host: flags.host, all: flags.all, tty: flags.tty }) });
    try {
      // Every host is checked before the command runs on any.
      const plans = [];
      for (const s of run.sessions) plans.push(flags.db || !w ? await planDbConsole(s, words) : await planExec(s, w, flags.tty));
      if (flags['dry-run']) return void plans.forEach((p) => say(dryRunLine(p)));
      const note = (line: string) => process.stderr.write(`exec: ${line}\n`);
      const [only] = plans;
      if (flags.tty && only) return await ttyExec(only, terminal(), timeoutMs, note);
      const ends = await streamExec(plans, {
        timeoutMs,
        // Input piped into exec reaches the command (like ssh); a terminal's does not without --tty.
        ...(process.stdin.isTTY ? {} : { stdin: process.stdin }),
        stdout: (b) => process.stdout.write(b),
        stderr: (b) => process.stderr.write(b),
        note,
      });
      return overallCode(ends);
    } finally {
      await run.close();
    }
  },
  own,
);

/** This process's terminal, for --tty: raw mode is put back when the process exits, however it exits. */
function terminal() {
  const stdin = process.stdin;
  const size = () => ({ rows: process.stdout.rows || 24, cols: process.stdout.columns || 80 });
  let raw = false;
  const setRaw = (on: boolean) => {
    if (stdin.isTTY && raw !== on) stdin.setRawMode(on);
    raw = on;
  };
  process.once('exit', () => setRaw(false));
  return {
    ...size(),
    term: process.env.TERM || 'xterm-256color',
    input: stdin,
    write: (b: Buffer) => void process.stdout.write(b),
    raw: setRaw,
    onResize: (listener: (rows: number, cols: number) => void) => {
      const resized = () => listener(size().rows, size().cols);
      process.stdout.on('resize', resized);
      return () => void process.stdout.off('resize', resized);
    },
  };
}
