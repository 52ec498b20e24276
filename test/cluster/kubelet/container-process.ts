// One container as a host process: `unshare --mount --propagation private` runs the script that
// builds its root (container-root.ts) and execs the command chrooted there, as the container's
// uid/gid (setpriv), with exactly its environment (env -i), in its own process group so that a
// kill reaches everything it started.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Container, V1PodSecurityContext } from '@kubernetes/client-node';
import { ContainerRootPlan, containerScript, type ContainerMount } from './container-root.js';
import type { ContainerLaunch } from './container-env.js';
import type { HostVolume } from './pod-volumes.js';
import type { Terminated } from './pod-status.js';

const LOG_TAIL_LINES = 80;
const MESSAGE_LIMIT = 4096;

export interface RunningContainer {
  pid: number;
  exited: Promise<Terminated>;
  /** SIGTERM to the process group, SIGKILL after `graceMs`. */
  kill(graceMs?: number): void;
}

function mountsOf(container: V1Container, volumes: Map<string, HostVolume>): ContainerMount[] {
  return (container.volumeMounts ?? []).map((vm) => {
    const volume = volumes.get(vm.name);
    if (!volume) throw new Error(`container ${container.name}: volumeMount ${vm.name} names no volume of the pod`);
    if (vm.subPath && (vm.subPath.startsWith('/') || vm.subPath.split('/').includes('..'))) throw new Error(`subPath ${vm.subPath} leaves the volume`);
    return {
      containerPath: vm.mountPath,
      hostPath: vm.subPath ? join(volume.hostPath, vm.subPath) : volume.hostPath,
      readOnly: volume.readOnly || (vm.readOnly ?? false),
      kind: 'dir',
    };
  });
}

// The capabilities a container runtime (containerd, CRI-O) gives a container by default.
const RUNTIME_DEFAULT_CAPS = [
  'CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP', 'SETPCAP', 'NET_BIND_SERVICE',
  'SYS_CHROOT', 'KILL', 'AUDIT_WRITE',
];

/** setpriv's arguments for the container's uid/gid, groups, capability bounding set and no_new_privs. */
function setpriv(container: V1Container, pod: V1PodSecurityContext | undefined): string[] {
  const sc = container.securityContext;
  const uid = sc?.runAsUser ?? pod?.runAsUser;
  const gid = sc?.runAsGroup ?? pod?.runAsGroup;
  const groups = [...(pod?.fsGroup !== undefined ? [pod.fsGroup] : []), ...(pod?.supplementalGroups ?? [])];
  const drop = new Set((sc?.capabilities?.drop ?? []).map((c) => c.toUpperCase().replace(/^CAP_/, '')));
  const add = (sc?.capabilities?.add ?? []).map((c) => c.toUpperCase().replace(/^CAP_/, ''));
  const caps = drop.has('ALL') ? add : [...RUNTIME_DEFAULT_CAPS.filter((c) => !drop.has(c)), ...add];
  return [
    '/usr/bin/setpriv',
    ...(uid !== undefined ? [`--reuid=${uid}`] : []),
    ...(gid !== undefined ? [`--regid=${gid}`] : []),
    // Supplementary groups: the pod's fsGroup and supplementalGroups, as kubelet gives them.
    ...(groups.length ? [`--groups=${groups.join(',')}`] : ['--clear-groups']),
    ...(sc?.privileged ? [] : [`--bounding-set=-all${[...new Set(caps)].map((c) => `,+${c.toLowerCase()}`).join('')}`]),
    ...(sc?.allowPrivilegeEscalation === false ? ['--no-new-privs'] : []),
    '--',
  ];
}

export function startContainer(
  container: V1Container,
  podSecurity: V1PodSecurityContext | undefined,
  launch: ContainerLaunch,
  volumes: Map<string, HostVolume>,
  dir: string,
): RunningContainer {
  mkdirSync(dir, { recursive: true });
  const root = join(dir, 'root');
  mkdirSync(root);
  const terminationFile = join(dir, 'termination-log');
  writeFileSync(terminationFile, '');
  chmodSync(terminationFile, 0o666); // any uid the container runs as writes it, as with kubelet
  const mounts = mountsOf(container, volumes);
  mounts.push({ containerPath: container.terminationMessagePath ?? '/dev/termination-log', hostPath: terminationFile, readOnly: false, kind: 'file' });
  const plan = new ContainerRootPlan(root).mountAll(mounts);
  if (container.securityContext?.readOnlyRootFilesystem) plan.readOnlyRoot();
  const argv = [
    ...setpriv(container, podSecurity),
    // After `--`, env still takes NAME=VALUE operands, up to the command.
    '/usr/bin/env', '-i', `--chdir=${container.workingDir ?? '/'}`, '--',
    ...Object.entries(launch.env).map(([k, v]) => `${k}=${v}`),
    ...launch.argv,
  ];
  const script = containerScript(plan, root, argv);
  writeFileSync(join(dir, 'start.sh'), script + '\n');

  const log = createWriteStream(join(dir, 'log'));
  let tail = '';
  const startedAt = new Date();
  const child = spawn('/usr/bin/unshare', ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c', script], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
  });
  const keep = (d: Buffer) => {
    log.write(d);
    tail = (tail + d.toString()).slice(-64 * 1024);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);

  const exited = new Promise<Terminated>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      log.end();
      const exitCode = code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 1);
      let message = readFileSync(terminationFile, 'utf8').slice(0, MESSAGE_LIMIT);
      if (!message && exitCode !== 0 && container.terminationMessagePolicy === 'FallbackToLogsOnError') {
        message = tail.split('\n').slice(-LOG_TAIL_LINES).join('\n').slice(-MESSAGE_LIMIT);
      }
      resolve({ exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', message, startedAt, finishedAt: new Date() });
    });
  });
  if (child.pid === undefined) throw new Error(`container ${container.name}: unshare did not start`);
  const pid = child.pid;

  return {
    pid,
    exited,
    kill(graceMs = 2000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const signal = (s: NodeJS.Signals) => {
        try {
          process.kill(-pid, s);
        } catch {
          // the group is gone already
        }
      };
      signal('SIGTERM');
      setTimeout(() => signal('SIGKILL'), graceMs).unref();
    },
  };
}
