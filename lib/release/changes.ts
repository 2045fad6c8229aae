/** Commits since the last tag, grouped by conventional-commit type, as text for the tag and CHANGELOG. Pure. */

export interface Commit {
  readonly sha: string;
  readonly subject: string;
}

export const GROUPS = [
  { key: 'feat', title: 'Features' },
  { key: 'fix', title: 'Fixes' },
  { key: 'perf', title: 'Performance' },
  { key: 'docs', title: 'Docs' },
  { key: 'other', title: 'Other' },
] as const;
export type GroupKey = (typeof GROUPS)[number]['key'];

const CONVENTIONAL = /^(\w+)(?:\([^)]*\))?(!)?:\s*(.+)$/;

/** The group of a commit subject and the subject without its type prefix. */
export const classify = (subject: string): { group: GroupKey; text: string; breaking: boolean } => {
  const m = CONVENTIONAL.exec(subject);
  if (!m) return { group: 'other', text: subject, breaking: false };
  const type = (m[1] as string).toLowerCase();
  const group: GroupKey = type === 'feat' || type === 'fix' || type === 'perf' || type === 'docs' ? type : 'other';
  return { group, text: group === 'other' ? subject : (m[3] as string), breaking: m[2] === '!' };
};

/** Groups commits, newest first within each group; release commits of earlier runs are left out. */
export const groupCommits = (commits: readonly Commit[]): Map<GroupKey, string[]> => {
  const groups = new Map<GroupKey, string[]>();
  for (const c of commits) {
    if (/^release: v\d/.test(c.subject)) continue;
    const { group, text, breaking } = classify(c.subject);
    const list = groups.get(group) ?? [];
    list.push(`${breaking ? 'BREAKING: ' : ''}${text} (${c.sha.slice(0, 7)})`);
    groups.set(group, list);
  }
  return groups;
};

/** The grouped changes as plain text: the annotated tag's message and what is shown before asking. */
export const renderChanges = (groups: Map<GroupKey, string[]>): string => {
  const parts = GROUPS.filter((g) => groups.get(g.key)?.length).map(
    (g) => `${g.title}:\n${(groups.get(g.key) ?? []).map((line) => `- ${line}`).join('\n')}`,
  );
  return parts.length ? parts.join('\n\n') : 'No changes since the last tag.';
};

/** A CHANGELOG.md section for the version, to be put above the previous ones. */
export const changelogSection = (version: string, date: string, groups: Map<GroupKey, string[]>): string => {
  const parts = GROUPS.filter((g) => groups.get(g.key)?.length).map(
    (g) => `### ${g.title}\n\n${(groups.get(g.key) ?? []).map((line) => `- ${line}`).join('\n')}`,
  );
  return `## v${version} (${date})\n\n${parts.length ? parts.join('\n\n') : 'No changes since the last tag.'}\n`;
};

/** CHANGELOG.md with the new section first, below the title. */
export const prependChangelog = (existing: string | undefined, section: string): string => {
  const title = '# Changelog\n';
  const rest = (existing ?? '').replace(/^# Changelog\s*\n/, '').trimStart();
  return `${title}\n${section}${rest ? `\n${rest}` : ''}`.replace(/\n*$/, '\n');
};

/** Sets the version in package.json or package-lock.json text, keeping its layout (2 spaces, final newline). */
export const setJsonVersion = (text: string, version: string, lockfile: boolean): string => {
  const json = JSON.parse(text) as Record<string, unknown> & { packages?: Record<string, Record<string, unknown>> };
  json.version = version;
  const root = json.packages?.[''];
  if (lockfile && root) root.version = version;
  return `${JSON.stringify(json, null, 2)}\n`;
};
