/**
 * Reads the steps of a GitHub Actions workflow of the shape docs/examples/github-actions.yml has
 * (jobs, steps with `uses`, `name`, `env` and a one-line or `|` block `run`), so a test runs the
 * workflow's own commands rather than a copy of them. Not a YAML parser: a line it does not
 * understand inside a step throws, so the example cannot grow a shape this reader skips.
 */

export interface Step {
  readonly name?: string;
  readonly uses?: string;
  readonly run?: string;
  readonly env: Readonly<Record<string, string>>;
}

const indentOf = (line: string): number => line.length - line.trimStart().length;

/** The steps of each job, in order. */
export const workflowJobs = (text: string): Record<string, Step[]> => {
  const lines = text.split('\n');
  const jobs: Record<string, Step[]> = {};
  let i = lines.findIndex((l) => l === 'jobs:');
  if (i < 0) throw new Error('no jobs:');
  let job: string | undefined;
  for (i++; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '' || line.trim().startsWith('#')) continue;
    const jobHead = /^ {2}([\w-]+):\s*$/.exec(line);
    if (jobHead) {
      job = jobHead[1] as string;
      jobs[job] = [];
      continue;
    }
    if (!/^ {4}steps:\s*$/.test(line) || job === undefined) continue;
    const steps = jobs[job] as Step[];
    for (i++; i < lines.length; i++) {
      const l = lines[i] as string;
      if (l.trim() === '') continue;
      if (indentOf(l) < 6) {
        i--;
        break;
      }
      const start = /^ {6}- (.*)$/.exec(l);
      if (!start) throw new Error(`line ${i + 1}: not a step: ${l}`);
      const step: { name?: string; uses?: string; run?: string; env: Record<string, string> } = { env: {} };
      steps.push(step);
      // The step's keys: the first on the `- ` line, the rest at 8 spaces.
      let keyLine: string | undefined = start[1];
      while (keyLine !== undefined) {
        const kv = /^([\w-]+):\s*(.*)$/.exec(keyLine);
        if (!kv) throw new Error(`line ${i + 1}: not a key: ${keyLine}`);
        const [, key, value] = kv as unknown as [string, string, string];
        if (key === 'run' && value === '|') {
          const body: string[] = [];
          while (i + 1 < lines.length && (indentOf(lines[i + 1] as string) >= 10 || (lines[i + 1] as string).trim() === '')) body.push((lines[++i] as string).slice(10));
          step.run = `${body.join('\n').trimEnd()}\n`;
        } else if (key === 'env' && value === '') {
          while (i + 1 < lines.length && indentOf(lines[i + 1] as string) >= 10) {
            const e = /^\s+([A-Z_][A-Z0-9_]*):\s*(.*)$/.exec(lines[++i] as string);
            if (!e) throw new Error(`line ${i + 1}: not an env entry`);
            step.env[e[1] as string] = e[2] as string;
          }
        } else if (key === 'run' || key === 'uses' || key === 'name') {
          step[key] = value;
        } else if (key !== 'with') {
          throw new Error(`line ${i + 1}: a step key this reader does not know: ${key}`);
        }
        const next = lines[i + 1];
        keyLine = next !== undefined && /^ {8}\S/.test(next) ? (i++, next.slice(8)) : undefined;
      }
    }
  }
  return jobs;
};
