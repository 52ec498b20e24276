// TypeScript shapes of the CSI messages this driver reads or writes, as @grpc/proto-loader
// decodes them with { keepCase, longs: Number, enums: String, defaults, oneofs } (see proto.ts).
// Only the fields the driver uses are listed.

export type AccessModeName =
  | 'UNKNOWN'
  | 'SINGLE_NODE_WRITER'
  | 'SINGLE_NODE_READER_ONLY'
  | 'MULTI_NODE_READER_ONLY'
  | 'MULTI_NODE_SINGLE_WRITER'
  | 'MULTI_NODE_MULTI_WRITER'
  | 'SINGLE_NODE_SINGLE_WRITER'
  | 'SINGLE_NODE_MULTI_WRITER';

export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: { fs_type: string; mount_flags: string[]; volume_mount_group: string } | null;
  access_mode?: { mode: AccessModeName } | null;
  access_type?: 'block' | 'mount';
}

export interface Topology {
  segments: Record<string, string>;
}

export interface TopologyRequirement {
  requisite: Topology[];
  preferred: Topology[];
}

export interface VolumeContentSource {
  snapshot?: { snapshot_id: string } | null;
  volume?: { volume_id: string } | null;
  type?: 'snapshot' | 'volume';
}

export interface CreateVolumeRequest {
  name: string;
  capacity_range?: { required_bytes: number; limit_bytes: number } | null;
  volume_capabilities: VolumeCapability[];
  parameters: Record<string, string>;
  secrets: Record<string, string>;
  volume_content_source?: VolumeContentSource | null;
  accessibility_requirements?: TopologyRequirement | null;
  mutable_parameters: Record<string, string>;
}

export interface Volume {
  capacity_bytes: number;
  volume_id: string;
  volume_context: Record<string, string>;
  content_source?: VolumeContentSource | null;
  accessible_topology: Topology[];
}

export interface DeleteVolumeRequest {
  volume_id: string;
  secrets: Record<string, string>;
}

export interface ValidateVolumeCapabilitiesRequest {
  volume_id: string;
  volume_context: Record<string, string>;
  volume_capabilities: VolumeCapability[];
  parameters: Record<string, string>;
  mutable_parameters: Record<string, string>;
}

export interface NodePublishVolumeRequest {
  volume_id: string;
  publish_context: Record<string, string>;
  staging_target_path: string;
  target_path: string;
  volume_capability?: VolumeCapability | null;
  readonly: boolean;
  secrets: Record<string, string>;
  volume_context: Record<string, string>;
}

export interface NodeUnpublishVolumeRequest {
  volume_id: string;
  target_path: string;
}

export interface NodeGetVolumeStatsRequest {
  volume_id: string;
  volume_path: string;
  staging_target_path: string;
}
