// A pod's volumes as host directories, made before its containers run: hostPath (checked or
// created per its type), emptyDir (a temp dir, 0777 as kubelet makes it), secret, configMap and
// projected volumes (files written to a temp dir with their modes), persistentVolumeClaim through
// the test's callback. Anything else is refused by name.
import { chmodSync, chownSync, mkdirSync, readdirSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import type { CoreV1Api, V1KeyToPath, V1Pod, V1Volume, V1VolumeProjection } from '@kubernetes/client-node';
import { UnsupportedPodFeature, fieldRefValue } from './container-env.js';

export interface HostVolume {
  hostPath: string;
  /** Read-only whatever the volumeMount says (secret, configMap, projected, a read-only claim). */
  readOnly: boolean;
}

/** Gives the host directory for a claim (the e2e suites: our node plugin's NodePublishVolume). */
export type ClaimPublisher = (pod: V1Pod, volume: V1Volume) => Promise<string>;
/** Releases what the publisher gave, once the pod's containers are gone (kubelet's NodeUnpublishVolume). */
export type ClaimUnpublisher = (pod: V1Pod, volume: V1Volume, hostPath: string) => Promise<void>;

/**
 * kubelet's fsGroup ownership for the volumes it writes itself (secret, configMap, projected):
 * every file and directory gets group `fsGroup` and at least group read (kubelet's read-only
 * mask, 0440), directories also setgid. So a 0600 key becomes 0640 root:fsGroup.
 */
function applyFsGroup(path: string, fsGroup: number): void {
  const st = statSync(path);
  chownSync(path, st.uid, fsGroup);
  if (st.isDirectory()) {
    chmodSync(path, (st.mode & 0o7777) | 0o440 | 0o110 | 0o2000);
    for (const entry of readdirSync(path)) applyFsGroup(posix.join(path, entry), fsGroup);
  } else {
    chmodSync(path, (st.mode & 0o7777) | 0o440);
  }
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function hostPathVolume(volume: V1Volume): HostVolume {
  const { path, type = '' } = volume.hostPath!;
  const st = statOrUndefined(path);
  const fail = (what: string) => {
    throw new Error(`hostPath volume ${volume.name}: ${path} ${what} (type ${type})`);
  };
  switch (type) {
    case '':
      break;
    case 'DirectoryOrCreate':
      if (!st) mkdirSync(path, { recursive: true, mode: 0o755 });
      else if (!st.isDirectory()) fail('is not a directory');
      break;
    case 'Directory':
      if (!st?.isDirectory()) fail('is not an existing directory');
      break;
    case 'FileOrCreate':
      if (!st) writeFileSync(path, '', { mode: 0o644 });
      else if (!st.isFile()) fail('is not a file');
      break;
    case 'File':
      if (!st?.isFile()) fail('is not an existing file');
      break;
    case 'Socket':
      if (!st?.isSocket()) fail('is not a socket');
      break;
    case 'CharDevice':
      if (!st?.isCharacterDevice()) fail('is not a character device');
      break;
    case 'BlockDevice':
      if (!st?.isBlockDevice()) fail('is not a block device');
      break;
    default:
      throw new UnsupportedPodFeature(`hostPath type ${type}`);
  }
  return { hostPath: path, readOnly: false };
}

function safeRelative(path: string): string {
  const normal = posix.normalize(path);
  if (normal.startsWith('/') || normal === '..' || normal.startsWith('../')) throw new Error(`volume item path ${path} leaves the volume`);
  return normal;
}

function writeItem(dir: string, path: string, content: Buffer, mode: number): void {
  const file = posix.join(dir, safeRelative(path));
  mkdirSync(posix.dirname(file), { recursive: true, mode: 0o755 });
  writeFileSync(file, content);
  chmodSync(file, mode); // not through writeFileSync's mode: the umask would narrow it
}

/** Writes `data` (or only `items`) into `dir`, each file with its item mode or `defaultMode`. */
function writeKeys(dir: string, what: string, data: Record<string, Buffer> | undefined, items: V1KeyToPath[] | undefined, defaultMode: number, optional: boolean): void {
  if (!data) {
    if (optional) return;
    throw new Error(`${what} not found`);
  }
  for (const item of items ?? Object.keys(data).map((key): V1KeyToPath => ({ key, path: key }))) {
    if (!(item.key in data)) throw new Error(`${what} has no key ${item.key}`);
    writeItem(dir, item.path, data[item.key], item.mode ?? defaultMode);
  }
}

export class PodVolumes {
  constructor(
    private readonly core: CoreV1Api,
    private readonly pod: V1Pod,
    private readonly dir: string,
    private readonly publishClaim?: ClaimPublisher,
  ) {}

  private get namespace(): string {
    return this.pod.metadata?.namespace ?? 'default';
  }

  private async secretData(name: string): Promise<Record<string, Buffer> | undefined> {
    const secret = await this.core.readNamespacedSecret({ name, namespace: this.namespace }).catch(() => undefined);
    return secret && Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
  }

  private async configMapData(name: string): Promise<Record<string, Buffer> | undefined> {
    const cm = await this.core.readNamespacedConfigMap({ name, namespace: this.namespace }).catch(() => undefined);
    if (!cm) return undefined;
    return {
      ...Object.fromEntries(Object.entries(cm.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'utf8')])),
      ...Object.fromEntries(Object.entries(cm.binaryData ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    };
  }

  private async projection(dir: string, source: V1VolumeProjection, defaultMode: number): Promise<void> {
    if (source.secret) {
      const name = source.secret.name ?? '';
      writeKeys(dir, `secret ${this.namespace}/${name}`, await this.secretData(name), source.secret.items, defaultMode, source.secret.optional ?? false);
    } else if (source.configMap) {
      const name = source.configMap.name ?? '';
      writeKeys(dir, `configMap ${this.namespace}/${name}`, await this.configMapData(name), source.configMap.items, defaultMode, source.configMap.optional ?? false);
    } else if (source.downwardAPI) {
      for (const item of source.downwardAPI.items ?? []) {
        if (!item.fieldRef) throw new UnsupportedPodFeature(`downwardAPI item ${item.path}: only fieldRef is supported`);
        writeItem(dir, item.path, Buffer.from(fieldRefValue(this.pod, item.fieldRef.fieldPath)), item.mode ?? defaultMode);
      }
    } else if (source.serviceAccountToken) {
      const { audience, expirationSeconds = 3600, path } = source.serviceAccountToken;
      const token = await this.core.createNamespacedServiceAccountToken({
        name: this.pod.spec?.serviceAccountName ?? 'default',
        namespace: this.namespace,
        body: {
          spec: {
            audiences: audience ? [audience] : [],
            expirationSeconds,
            boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: this.pod.metadata?.name, uid: this.pod.metadata?.uid },
          },
        },
      });
      writeItem(dir, path, Buffer.from(token.status?.token ?? ''), defaultMode);
    } else {
      throw new UnsupportedPodFeature('projected source other than secret, configMap, downwardAPI, serviceAccountToken');
    }
  }

  private async prepare(volume: V1Volume): Promise<HostVolume> {
    if (volume.hostPath) return hostPathVolume(volume);
    if (volume.persistentVolumeClaim) {
      if (!this.publishClaim) throw new UnsupportedPodFeature(`volume ${volume.name}: a claim, and the test gave no ClaimPublisher`);
      return { hostPath: await this.publishClaim(this.pod, volume), readOnly: volume.persistentVolumeClaim.readOnly ?? false };
    }
    const dir = posix.join(this.dir, volume.name);
    mkdirSync(dir, { recursive: true });
    if (volume.emptyDir) {
      chmodSync(dir, 0o777);
      return { hostPath: dir, readOnly: false };
    }
    chmodSync(dir, 0o755);
    if (volume.secret) {
      const name = volume.secret.secretName ?? '';
      writeKeys(dir, `secret ${this.namespace}/${name}`, await this.secretData(name), volume.secret.items, volume.secret.defaultMode ?? 0o644, volume.secret.optional ?? false);
    } else if (volume.configMap) {
      const name = volume.configMap.name ?? '';
      writeKeys(dir, `configMap ${this.namespace}/${name}`, await this.configMapData(name), volume.configMap.items, volume.configMap.defaultMode ?? 0o644, volume.configMap.optional ?? false);
    } else if (volume.projected) {
      for (const source of volume.projected.sources ?? []) await this.projection(dir, source, volume.projected.defaultMode ?? 0o644);
    } else {
      const kind = Object.keys(volume).find((k) => k !== 'name') ?? 'none';
      throw new UnsupportedPodFeature(`volume ${volume.name}: type ${kind} is not supported (hostPath, emptyDir, secret, configMap, projected, persistentVolumeClaim are)`);
    }
    const fsGroup = this.pod.spec?.securityContext?.fsGroup;
    if (fsGroup !== undefined) applyFsGroup(dir, fsGroup);
    return { hostPath: dir, readOnly: true };
  }

  /** Every volume of the pod, by name. */
  async prepareAll(): Promise<Map<string, HostVolume>> {
    const byName = new Map<string, HostVolume>();
    for (const volume of this.pod.spec?.volumes ?? []) byName.set(volume.name, await this.prepare(volume));
    return byName;
  }
}
