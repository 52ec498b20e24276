import { hostname } from 'node:os';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from '../../../log.js';
import { apiMessage, isConflict, orNone, type KubeClient } from './client.js';
import { MANAGED_BY } from '../constants.js';
import { eventName } from './names.js';

// core/v1 Events, so `kubectl describe pvc` tells the user what happened to their clone.
// Each Event has a deterministic name (object, reason, the Job that caused it): a retried call
// that reports the same thing again gets a 409 and records nothing twice. Recording never fails
// the calling RPC.

export interface EventTarget {
  kind: 'PersistentVolumeClaim' | 'PersistentVolume';
  namespace?: string;
  name: string;
  uid?: string;
}

export interface EventSpec {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  /** What makes this occurrence unique (e.g. the Job's uid). */
  instance: string;
}

const MAX_MESSAGE = 1024;

export class EventRecorder {
  private readonly host = hostname();

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {}

  /** An Event on a PVC; its uid is looked up so that `kubectl describe` shows it. */
  async onPvc(pvc: { namespace: string; name: string } | undefined, spec: EventSpec): Promise<void> {
    if (!pvc) return;
    let uid: string | undefined;
    try {
      uid = (await orNone(this.client.core.readNamespacedPersistentVolumeClaim(pvc)))?.metadata?.uid;
    } catch {
      /* recorded without uid */
    }
    await this.record({ kind: 'PersistentVolumeClaim', ...pvc, uid }, spec);
  }

  async record(target: EventTarget, spec: EventSpec): Promise<void> {
    const namespace = target.namespace ?? 'default';
    const now = new Date();
    const message = spec.message.length > MAX_MESSAGE ? `${spec.message.slice(0, MAX_MESSAGE - 3)}...` : spec.message;
    const event: CoreV1Event = {
      metadata: { name: eventName(target.name, spec.reason, spec.instance), namespace },
      involvedObject: { apiVersion: 'v1', kind: target.kind, namespace: target.namespace, name: target.name, uid: target.uid },
      type: spec.type,
      reason: spec.reason,
      message,
      count: 1,
      firstTimestamp: now,
      lastTimestamp: now,
      source: { component: MANAGED_BY, host: this.host },
      reportingComponent: MANAGED_BY,
      reportingInstance: this.host,
    };
    try {
      await this.client.core.createNamespacedEvent({ namespace, body: event });
    } catch (err) {
      if (isConflict(err)) return;
      this.log.warn('could not record event', { object: `${namespace}/${target.name}`, reason: spec.reason, error: apiMessage(err) });
    }
  }
}
