import { invalidArgument, resourceExhausted } from '../csi/errors.js';
import { TOPOLOGY_KEY } from '../csi/identity.js';
import type { Topology, TopologyRequirement } from '../csi/types.js';

const nodeOf = (t: Topology | undefined) => t?.segments?.[TOPOLOGY_KEY];

/**
 * Node for an empty volume: the first preferred topology, else the first requisite. A driver
 * that can only place on its own node (standalone) takes that node when it is allowed.
 */
export function placeEmptyVolume(requirements: TopologyRequirement | null | undefined, onlyNode?: string): string {
  if (onlyNode) return requireAllowed(requirements, onlyNode, 'this driver only places volumes on its own node');
  const node = requirements?.preferred?.map(nodeOf).find(Boolean) ?? requirements?.requisite?.map(nodeOf).find(Boolean);
  if (!node) throw invalidArgument(`accessibility requirements name no node (topology key ${TOPOLOGY_KEY})`);
  return node;
}

function requireAllowed(requirements: TopologyRequirement | null | undefined, node: string, why: string): string {
  const requisite = requirements?.requisite ?? [];
  if (requisite.length > 0 && !requisite.some((t) => nodeOf(t) === node)) {
    throw resourceExhausted(`the volume must be placed on node ${node} (${why}), but that node is not among the allowed topologies`);
  }
  return node;
}

/** A clone must live where its source lives; refuse (the sidecar reschedules) when that node is not allowed. */
export function placeClone(requirements: TopologyRequirement | null | undefined, sourceNode: string): string {
  return requireAllowed(requirements, sourceNode, 'a clone lives where its source volume lives');
}

export const topologyFor = (node: string): Topology => ({ segments: { [TOPOLOGY_KEY]: node } });
