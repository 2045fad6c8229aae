/**
 * Free disk space on a host, asked one way: POSIX `df -Pk` (one line per file system, never wrapped,
 * in 1024-byte blocks), the fourth field of its second line. The image ship and the backup both ask.
 */
import { reads, script, type Cmd } from './cmd.ts';

/** Shell function `free_kb PATH`: prints the free kilobytes of the file system that holds PATH. */
export const FREE_KB = 'free_kb() { df -Pk -- "$1" | awk \'NR == 2 { print $4 }\'; }';

/** Free kilobytes on the file system that holds a path. */
export const freeKilobytes = (path: string): Cmd => reads(script(`${FREE_KB}\nfree_kb "$1"`, path));
