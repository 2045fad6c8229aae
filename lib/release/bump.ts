/** The next version of a release: a bump word or an explicit version, checked with semver. Pure. */
import semver from 'semver';
import { UsageError } from '../core/errors.ts';

export const BUMPS = ['patch', 'minor', 'major', 'prerelease'] as const;
export type Bump = (typeof BUMPS)[number];

const PREID = /^[0-9A-Za-z-]+$/;

/** Checks a prerelease id (`rc`, `beta`): what semver allows in one identifier. */
export const checkPreid = (preid: string): void => {
  if (!PREID.test(preid)) throw new UsageError(`--preid ${JSON.stringify(preid)} is invalid: use letters, digits and - only (e.g. --preid rc)`);
};

/**
 * The version after `current`: `patch|minor|major|prerelease`, or an explicit X.Y.Z[-pre] that must
 * be greater. `prerelease` on a release starts `X.Y.(Z+1)-<preid>.0`; on a prerelease it counts up.
 */
export const nextVersion = (current: string, bump: string, preid = 'rc'): string => {
  checkPreid(preid);
  if (!semver.valid(current)) throw new UsageError(`package.json version ${JSON.stringify(current)} is not semver: fix it first (e.g. 1.0.0)`);
  if ((BUMPS as readonly string[]).includes(bump)) {
    const next = semver.inc(current, bump as Bump, preid);
    if (!next) throw new UsageError(`cannot bump ${current} by ${bump}`);
    return next;
  }
  const explicit = semver.valid(bump.replace(/^v/, ''));
  if (!explicit) {
    throw new UsageError(`${JSON.stringify(bump)} is neither patch, minor, major, prerelease nor a version like 1.2.3`);
  }
  if (!semver.gt(explicit, current)) throw new UsageError(`${explicit} is not greater than the current version ${current}`);
  return explicit;
};
