// Resident memory and open file descriptors of a process and its descendants, read from /proc
// (Linux only): what the soak samples to see whether anything grows over hours.
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcSample {
  pid: number;
  /** The process's name (the `Name:` line of /proc/<pid>/status), e.g. node or redis-server. */
  name: string;
  /** VmRSS in KiB. */
  rssKiB: number;
  /** Of it: anonymous memory (heap, malloc arenas) and file-backed pages (code, mapped files), KiB. */
  anonKiB: number;
  fileKiB: number;
  fds: number;
}

/** The pid and every descendant of it that is alive now (parent links read from /proc/<pid>/stat). */
export function processTree(root: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (ppid) follows the command name, which is in parentheses and may hold spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // The process ended between readdir and read.
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, ppid] of parents) if (ppid === tree[i]) tree.push(pid);
  }
  return tree.filter((pid) => parents.has(pid));
}

/** One sample of a process, or undefined when it is gone. */
export function sampleProcess(pid: number): ProcSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const name = /^Name:\s*(.+)$/m.exec(status)?.[1] ?? '?';
    const kib = (field: string): number =>
      Number(new RegExp(`^${field}:\\s*(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    return { pid, name, rssKiB: kib('VmRSS'), anonKiB: kib('RssAnon'), fileKiB: kib('RssFile'), fds };
  } catch {
    return undefined;
  }
}
