// The shell commands that build a container's filesystem view inside a private mount namespace,
// without creating anything on the host outside the container's temp dir.
//
// The root is a tmpfs (at `root`, a temp dir) whose top-level entries are the host's, bound back
// (directories rbound, files bound, symlinks copied): the container sees the host's programs
// (there is no image), and a mountPath missing on the host is created on a tmpfs: at the top
// level directly; under a host directory by "shadowing" that directory with a tmpfs whose
// entries are bound back from the host, then creating the missing entry on that tmpfs. Inside a
// volume, a missing mountPath is created in the volume, as kubelet does. The process then
// chroots into the root. Everything dies with the namespace: nothing to unmount on the host.
import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { dirname, posix } from 'node:path';

export interface ContainerMount {
  /** Absolute path inside the container. */
  containerPath: string;
  /** Host path bound there (a directory or, for `kind: 'file'`, a file). */
  hostPath: string;
  readOnly: boolean;
  kind: 'dir' | 'file';
}

export class UnsupportedLayout extends Error {}

type Backing =
  | { kind: 'tmpfs' }
  /** A host directory or file bound at this path; `shadowable` when it is host content (not a volume). */
  | { kind: 'host'; source: string; shadowable: boolean };

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

export class ContainerRootPlan {
  readonly commands: string[] = [];
  private readonly mounts = new Map<string, Backing>();
  private readonly onTmpfs = new Map<string, 'dir' | 'file'>();

  constructor(private readonly root: string) {
    this.run('/usr/bin/mount', '-t', 'tmpfs', '-o', 'mode=0755', 'pgr-container-root', root);
    this.mounts.set('/', { kind: 'tmpfs' });
    this.replicateHostEntries('/', '/');
  }

  /** Binds each mount (parents first), creating missing mount points as described above. */
  mountAll(mounts: ContainerMount[]): this {
    const sorted = [...mounts].sort((a, b) => a.containerPath.split('/').length - b.containerPath.split('/').length);
    for (const m of sorted) {
      const path = posix.normalize(m.containerPath);
      if (!path.startsWith('/') || path === '/') throw new UnsupportedLayout(`mountPath ${m.containerPath} must be absolute and not /`);
      this.ensure(path, m.kind);
      this.run('/usr/bin/mount', '--bind', m.hostPath, this.at(path));
      if (m.readOnly) this.run('/usr/bin/mount', '-o', 'remount,bind,ro', this.at(path));
      this.forgetBeneath(path);
      this.mounts.set(path, { kind: 'host', source: m.hostPath, shadowable: false });
    }
    return this;
  }

  /**
   * readOnlyRootFilesystem: the root and the host content bound into it become read-only
   * (the host's submounts under them stay as they are, and so do /dev, /proc and /sys); volumes
   * keep their own mode.
   */
  readOnlyRoot(): this {
    for (const [path, backing] of this.mounts) {
      if (/^\/(dev|proc|sys)(\/|$)/.test(path)) continue; // the runtime's own: /dev stays writable, as in a container
      if (backing.kind === 'host' && backing.shadowable) this.run('/usr/bin/mount', '-o', 'remount,bind,ro', this.at(path));
      if (backing.kind === 'tmpfs') this.run('/usr/bin/mount', '-o', 'remount,ro', this.at(path));
    }
    return this;
  }

  private at(path: string): string {
    return path === '/' ? this.root : this.root + path;
  }

  private run(...argv: string[]): void {
    this.commands.push(argv.map(quote).join(' '));
  }

  private backingOf(path: string): { mountPoint: string; backing: Backing } {
    for (let p = path; ; p = dirname(p)) {
      const backing = this.mounts.get(p);
      if (backing) return { mountPoint: p, backing };
      if (p === '/') throw new Error('unreachable: / is always mounted');
    }
  }

  /** What is at `path` in the container: 'dir', 'file', or undefined when nothing is. */
  private lookup(path: string): 'dir' | 'file' | undefined {
    const { mountPoint, backing } = this.backingOf(path);
    if (backing.kind === 'tmpfs') {
      if (path === mountPoint) return 'dir';
      return this.onTmpfs.get(path);
    }
    const hostPath = backing.source + path.slice(mountPoint.length);
    const st = lstatOrUndefined(hostPath);
    if (!st) return undefined;
    if (st.isSymbolicLink()) throw new UnsupportedLayout(`${path} is a symlink on the host (${hostPath}); mount paths through symlinks are not supported`);
    return st.isDirectory() ? 'dir' : 'file';
  }

  private ensure(path: string, kind: 'dir' | 'file'): void {
    const found = this.lookup(path);
    if (found) {
      if (found !== kind) throw new UnsupportedLayout(`${path} is a ${found} in the container, the mount needs a ${kind}`);
      return;
    }
    const parent = dirname(path);
    this.ensure(parent, 'dir');
    const { backing } = this.backingOf(parent);
    if (backing.kind === 'host' && backing.shadowable) this.shadow(parent);
    if (kind === 'dir') this.run('/usr/bin/mkdir', this.at(path));
    else this.run('/usr/bin/touch', this.at(path));
    if (this.backingOf(path).backing.kind === 'tmpfs') this.onTmpfs.set(path, kind);
  }

  /** Puts a tmpfs over host directory `dir` (in the container) and binds the host's entries back. */
  private shadow(dir: string): void {
    const { mountPoint, backing } = this.backingOf(dir);
    if (backing.kind !== 'host') throw new Error('unreachable: only host directories are shadowed');
    const hostDir = backing.source + dir.slice(mountPoint.length);
    for (const beneath of this.mounts.keys()) {
      if (beneath.startsWith(dir + '/') && this.mounts.get(beneath)?.kind !== 'host') {
        throw new UnsupportedLayout(`creating a mount point in ${dir} would hide ${beneath}, mounted earlier`);
      }
      const b = this.mounts.get(beneath);
      if (beneath.startsWith(dir + '/') && b?.kind === 'host' && !b.shadowable) {
        throw new UnsupportedLayout(`creating a mount point in ${dir} would hide the volume at ${beneath}`);
      }
    }
    const mode = (lstatSync(hostDir).mode & 0o7777).toString(8);
    this.run('/usr/bin/mount', '-t', 'tmpfs', '-o', `mode=${mode}`, 'pgr-shadow', this.at(dir));
    this.forgetBeneath(dir);
    this.mounts.set(dir, { kind: 'tmpfs' });
    this.replicateHostEntries(dir, hostDir);
  }

  private forgetBeneath(dir: string): void {
    for (const p of [...this.mounts.keys()]) if (p.startsWith(dir + '/')) this.mounts.delete(p);
    for (const p of [...this.onTmpfs.keys()]) if (p.startsWith(dir + '/')) this.onTmpfs.delete(p);
  }

  private replicateHostEntries(dir: string, hostDir: string): void {
    for (const name of readdirSync(hostDir).sort()) {
      const host = posix.join(hostDir, name);
      const inside = posix.join(dir, name);
      const st = lstatOrUndefined(host);
      if (!st) continue;
      if (st.isSymbolicLink()) {
        this.run('/usr/bin/ln', '-s', readlinkSync(host), this.at(inside));
        continue;
      }
      if (st.isDirectory()) {
        this.run('/usr/bin/mkdir', this.at(inside));
        this.run('/usr/bin/mount', '--rbind', host, this.at(inside));
      } else {
        this.run('/usr/bin/touch', this.at(inside));
        this.run('/usr/bin/mount', '--bind', host, this.at(inside));
      }
      this.mounts.set(inside, { kind: 'host', source: host, shadowable: true });
    }
  }
}

/** The whole script: build the root, then exec `argv` chrooted there (as `uid`:`gid` when given). */
export function containerScript(plan: ContainerRootPlan, root: string, launch: string[]): string {
  return ['set -e', ...plan.commands, `exec /usr/sbin/chroot ${quote(root)} ${launch.map(quote).join(' ')}`].join('\n');
}
