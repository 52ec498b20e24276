import { describe, expect, it } from '@jest/globals';
import { ConfigError, parseConfig } from '../../src/config.js';

const base = ['--endpoint', 'unix:///tmp/x.sock', '--root', '/srv/v', '--node-id', 'node-a'];

describe('configuration', () => {
  it('reads flags, with environment variables as fallback and defaults last', () => {
    const config = parseConfig(['standalone', ...base], { LOG_LEVEL: 'debug' });
    expect(config).toMatchObject({ role: 'standalone', socketPath: '/tmp/x.sock', root: '/srv/v', nodeId: 'node-a', logLevel: 'debug' });
    const fromEnv = parseConfig(['node'], { CSI_ENDPOINT: 'unix:///csi/csi.sock', NODE_NAME: 'n1', HOSTPATH_PREFIX: '/data' });
    expect(fromEnv).toMatchObject({ socketPath: '/csi/csi.sock', nodeId: 'n1', root: '/data', logLevel: 'info' });
    const flagWins = parseConfig(['node', '--node-id', 'flag'], { NODE_NAME: 'env' });
    expect(flagWins).toMatchObject({ nodeId: 'flag' });
  });

  it('parses the controller settings', () => {
    const config = parseConfig(['controller', '--namespace-path', 'a, b'], { POD_NAMESPACE: 'sys', DRIVER_IMAGE: 'img:1' });
    expect(config).toMatchObject({ namespacePath: ['a', 'b'], driverNamespace: 'sys', driverImage: 'img:1', jobServiceAccount: 'default' });
  });

  it.each([
    [['nope'], 'unknown role'],
    [['node'], '--node-id (or NODE_NAME) is required'],
    [['standalone', ...base, '--endpoint', 'tcp://1.2.3.4:5'], 'must be unix:///absolute/path'],
    [['standalone', ...base, '--root', 'relative'], 'must be an absolute path'],
    [['standalone', ...base, '--node-id', 'Bad_Node'], 'not a lowercase DNS subdomain'],
    [['standalone', ...base, '--log-level', 'loud'], 'log level "loud"'],
    [['standalone', ...base, '--bogus', 'x'], "Unknown option '--bogus'"],
    [['standalone', ...base, '--namespace-path', 'a'], 'does not apply to the standalone role'],
    [['controller'], '--driver-namespace (or POD_NAMESPACE) is required'],
    [['standalone', ...base, '--metrics-address', 'nope'], 'must be [host]:port'],
  ])('rejects %j with a clear message', (argv, message) => {
    expect(() => parseConfig(argv, {})).toThrow(ConfigError);
    expect(() => parseConfig(argv, {})).toThrow(message);
  });

  it('ignores controller-only environment in other roles', () => {
    expect(parseConfig(['node', '--node-id', 'n1'], { NAMESPACE_PATH: 'Bad_NS' })).toMatchObject({ namespacePath: [] });
  });

  it('asks for help without a role', () => {
    expect(parseConfig([], {})).toBe('help');
    expect(parseConfig(['node', '--help'], {})).toBe('help');
  });
});
