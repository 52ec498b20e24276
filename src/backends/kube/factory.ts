import type { KubeBackendFactory } from '../../driver.js';

export const kubeBackendFactory: KubeBackendFactory = async () => {
  throw new Error('the Kubernetes backend is not built yet');
};
