// One pod, run once as kubelet would with restartPolicy Never: its volumes, then its init
// containers one after another (the first failure fails the pod), then its containers all at
// once; the pod Succeeded when every container exits 0. Pod deletion and the pod's
// activeDeadlineSeconds kill what runs.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreV1Api, V1Container, V1Pod } from '@kubernetes/client-node';
import { containerLaunch, type ImageTable } from './container-env.js';
import { startContainer, type RunningContainer } from './container-process.js';
import { PodStatusReporter, type Terminated } from './pod-status.js';
import { PodVolumes, type ClaimPublisher, type ClaimUnpublisher, type HostVolume } from './pod-volumes.js';

export interface PodRunnerContext {
  core: CoreV1Api;
  images: ImageTable;
  publishClaim?: ClaimPublisher;
  unpublishClaim?: ClaimUnpublisher;
  log: (line: string) => void;
}

export class PodRunner {
  private readonly running = new Set<RunningContainer>();
  private stopReason?: { reason: string; message: string };
  private readonly status: PodStatusReporter;
  readonly done: Promise<void>;

  constructor(private readonly ctx: PodRunnerContext, private readonly pod: V1Pod, private readonly dir: string) {
    this.status = new PodStatusReporter(ctx.core, pod);
    this.done = this.run().catch((err: Error) => this.ctx.log(`pod ${this.name}: ${err.stack ?? err.message}`));
  }

  get name(): string {
    return `${this.pod.metadata?.namespace}/${this.pod.metadata?.name}`;
  }

  /** Kills the pod's processes; the pod ends Failed with `reason` unless it has ended already. */
  stop(reason: string, message: string, graceMs?: number): void {
    this.stopReason ??= { reason, message };
    for (const c of this.running) c.kill(graceMs);
  }

  private async run(): Promise<void> {
    const spec = this.pod.spec!;
    if (spec.restartPolicy && spec.restartPolicy !== 'Never') this.ctx.log(`pod ${this.name}: restartPolicy ${spec.restartPolicy} run as Never`);
    const deadline = spec.activeDeadlineSeconds
      ? setTimeout(() => this.stop('DeadlineExceeded', `Pod was active on the node longer than the specified deadline`), spec.activeDeadlineSeconds * 1000)
      : undefined;
    let volumes = new Map<string, HostVolume>();
    try {
      try {
        volumes = await new PodVolumes(this.ctx.core, this.pod, join(this.dir, 'volumes'), this.ctx.publishClaim).prepareAll();
      } catch (err) {
        await this.status.finished('Failed', 'VolumesNotPrepared', (err as Error).message);
        return;
      }
      for (const container of spec.initContainers ?? []) {
        const t = await this.runContainer(container, volumes);
        if (t.exitCode !== 0 || this.stopReason) return await this.fail(`init container ${container.name} exited ${t.exitCode}`);
      }
      const results = await Promise.all(spec.containers.map((c) => this.runContainer(c, volumes)));
      const failed = spec.containers.filter((_, i) => results[i].exitCode !== 0).map((c) => c.name);
      if (failed.length || this.stopReason) return await this.fail(`containers ${failed.join(', ')} failed`);
      await this.status.finished('Succeeded');
    } finally {
      clearTimeout(deadline);
      await this.unpublishClaims(volumes);
    }
  }

  /** The claims' mounts go once no container uses them, as kubelet unpublishes before the pod is forgotten. */
  private async unpublishClaims(volumes: Map<string, HostVolume>): Promise<void> {
    if (!this.ctx.unpublishClaim) return;
    for (const volume of this.pod.spec?.volumes ?? []) {
      const published = volumes.get(volume.name);
      if (!volume.persistentVolumeClaim || !published) continue;
      await this.ctx.unpublishClaim(this.pod, volume, published.hostPath).catch((err: Error) => this.ctx.log(`pod ${this.name}: unpublishing ${volume.name}: ${err.message}`));
    }
  }

  private fail(message: string): Promise<void> {
    return this.status.finished('Failed', this.stopReason?.reason, this.stopReason?.message ?? message);
  }

  private async runContainer(container: V1Container, volumes: Map<string, HostVolume>): Promise<Terminated> {
    const startedAt = new Date();
    if (this.stopReason) {
      const t = { exitCode: 137, reason: this.stopReason.reason, message: 'not started: the pod was stopping', startedAt, finishedAt: startedAt };
      await this.status.terminated(container.name, t);
      return t;
    }
    let c: RunningContainer;
    try {
      const launch = await containerLaunch(this.ctx.core, this.pod, container, this.ctx.images);
      c = startContainer(container, this.pod.spec?.securityContext, launch, volumes, join(this.dir, 'containers', container.name));
    } catch (err) {
      // kubelet would leave the container waiting (CreateContainerConfigError); ending it lets the test see why.
      const t = { exitCode: 128, reason: 'CreateContainerConfigError', message: (err as Error).message, startedAt, finishedAt: new Date() };
      await this.status.terminated(container.name, t);
      return t;
    }
    this.running.add(c);
    await this.status.running(container.name, c.pid);
    const t = await c.exited;
    this.running.delete(c);
    await this.status.terminated(container.name, t);
    return t;
  }

  static start(ctx: PodRunnerContext, pod: V1Pod, podsDir: string): PodRunner {
    const dir = join(podsDir, pod.metadata?.uid ?? 'no-uid');
    mkdirSync(dir, { recursive: true });
    return new PodRunner(ctx, pod, dir);
  }
}
