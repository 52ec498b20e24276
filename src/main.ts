#!/usr/bin/env node
import { ConfigError, parseConfig, usage, type Config } from './config.js';
import { startDriver } from './driver.js';
import { createLogger } from './log.js';
import { runCleanup } from './cleanup.js';

const EXIT_CONFIG = 2;

async function main(argv: string[]): Promise<number> {
  let config: Config | 'help';
  try {
    config = parseConfig(argv, process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`pg-reflinker: ${err.message} (see pg-reflinker ${argv[0] && !argv[0].startsWith('-') ? `${argv[0]} ` : ''}--help)\n`);
    return EXIT_CONFIG;
  }
  if (config === 'help') {
    const role = argv[0] && !argv[0].startsWith('-') ? (argv[0] as Config['role']) : undefined;
    process.stdout.write(`${usage(role)}\n`);
    return 0;
  }
  const log = createLogger(config.logLevel);
  if (config.role === 'cleanup') return runCleanup(config, log);

  const kube = config.role === 'controller' ? (await import('./backends/kube/factory.js')).kubeBackendFactory : undefined;
  const driver = await startDriver(config, log, kube);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info('shutting down', { signal });
      void driver.stop().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`pg-reflinker: ${err.message}\n`);
    process.exit(1);
  },
);
