// A container's environment and command line as kubelet computes them: the image's defaults (from
// the test's image table, since there is no image), literal values, Secret and ConfigMap keys,
// the downward API, and $(VAR) expansion in values, command and args.
import type { CoreV1Api, V1Container, V1EnvVar, V1Pod } from '@kubernetes/client-node';

export const POD_IP = '127.0.0.1';

/** What an image would have provided: its ENTRYPOINT, CMD and ENV. */
export interface ImageDefaults {
  entrypoint?: string[];
  cmd?: string[];
  env?: Record<string, string>;
}

/** Image name (with tag, or without it to match any tag) → the host's stand-in for it. */
export type ImageTable = Record<string, ImageDefaults>;

export class UnsupportedPodFeature extends Error {}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function imageDefaults(images: ImageTable, image: string): ImageDefaults {
  const withoutTag = image.replace(/@.*$/, '').replace(/:[^:/]*$/, '');
  const found = images[image] ?? images[withoutTag];
  if (!found) throw new UnsupportedPodFeature(`image ${image} is not in the test kubelet's image table (${Object.keys(images).join(', ')})`);
  return found;
}

export function fieldRefValue(pod: V1Pod, fieldPath: string): string {
  const values: Record<string, string | undefined> = {
    'metadata.name': pod.metadata?.name,
    'metadata.namespace': pod.metadata?.namespace,
    'metadata.uid': pod.metadata?.uid,
    'spec.nodeName': pod.spec?.nodeName,
    'spec.serviceAccountName': pod.spec?.serviceAccountName,
    'status.podIP': POD_IP,
    'status.hostIP': POD_IP,
  };
  const label = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (label) return (label[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations)?.[label[2]] ?? '';
  if (!(fieldPath in values)) throw new UnsupportedPodFeature(`downward API field ${fieldPath} is not supported`);
  return values[fieldPath] ?? '';
}

/** $(VAR) from `env`, $$(VAR) for a literal $(VAR); unknown references stay as they are (kubelet's rule). */
export function expand(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) => {
    if (whole === '$$') return '$';
    return name !== undefined && name in env ? env[name] : whole;
  });
}

async function keyOf(core: CoreV1Api, kind: 'secret' | 'configMap', namespace: string, name: string, key: string, optional: boolean): Promise<string | undefined> {
  try {
    if (kind === 'secret') {
      const data = (await core.readNamespacedSecret({ name, namespace })).data ?? {};
      if (key in data) return Buffer.from(data[key], 'base64').toString('utf8');
    } else {
      const data = (await core.readNamespacedConfigMap({ name, namespace })).data ?? {};
      if (key in data) return data[key];
    }
  } catch (err) {
    if (!optional) throw new Error(`${kind} ${namespace}/${name}: ${(err as Error).message}`);
    return undefined;
  }
  if (!optional) throw new Error(`${kind} ${namespace}/${name} has no key ${key}`);
  return undefined;
}

async function valueOf(core: CoreV1Api, pod: V1Pod, v: V1EnvVar, env: Record<string, string>): Promise<string | undefined> {
  const namespace = pod.metadata?.namespace ?? 'default';
  if (!v.valueFrom) return expand(v.value ?? '', env);
  const { secretKeyRef, configMapKeyRef, fieldRef } = v.valueFrom;
  if (secretKeyRef) return keyOf(core, 'secret', namespace, secretKeyRef.name ?? '', secretKeyRef.key, secretKeyRef.optional ?? false);
  if (configMapKeyRef) return keyOf(core, 'configMap', namespace, configMapKeyRef.name ?? '', configMapKeyRef.key, configMapKeyRef.optional ?? false);
  if (fieldRef) return fieldRefValue(pod, fieldRef.fieldPath);
  throw new UnsupportedPodFeature(`env ${v.name}: only value, secretKeyRef, configMapKeyRef and fieldRef are supported`);
}

export interface ContainerLaunch {
  argv: string[];
  env: Record<string, string>;
}

export async function containerLaunch(core: CoreV1Api, pod: V1Pod, container: V1Container, images: ImageTable): Promise<ContainerLaunch> {
  if (container.envFrom?.length) throw new UnsupportedPodFeature(`container ${container.name}: envFrom is not supported`);
  const image = imageDefaults(images, container.image ?? '');
  const env: Record<string, string> = { PATH: DEFAULT_PATH, HOSTNAME: pod.metadata?.name ?? '', ...image.env };
  for (const v of container.env ?? []) {
    const value = await valueOf(core, pod, v, env);
    if (value !== undefined) env[v.name] = value;
  }
  // kubelet's rule: a command replaces the ENTRYPOINT and drops the CMD; args replace the CMD.
  const argv = container.command
    ? [...container.command, ...(container.args ?? [])]
    : [...(image.entrypoint ?? []), ...(container.args ?? image.cmd ?? [])];
  if (argv.length === 0) throw new UnsupportedPodFeature(`container ${container.name}: no command, and the image table gives no entrypoint`);
  return { argv: argv.map((a) => expand(a, env)), env };
}
