export interface BenchOptions {
  scales: number[];
  quick: boolean;
  /** Seconds of load measured before each operation, and after it. */
  beforeS: number;
  afterS: number;
  /** Seconds the load runs undisturbed after the previous copy's cleanup, before the before window. */
  settleS: number;
  /** Copy-on-write extent size hints tried on the source (bytes). */
  cowSizes: number[];
  /** Where the JSON goes. */
  resultsDir: string;
  /** Only the phase breakdown: this many clones per durability path (fsync, and syncfs as the control); 0 = the full bench. */
  overhead: number;
}

const USAGE = `usage: node dist/bench/bench.js [--scales 150,600] [--quick] [--after S] [--before S] [--cow 8k,64k] [--results DIR] [--overhead N]
  --scales   pgbench scales to measure (150 ≈ 3.5 GB PGDATA, 600 ≈ 10.5 GB); default 150,600
  --quick    smoke run: scale 20, 10 s windows, one cowextsize
  --after    seconds of load measured after each copy (default 30)
  --before   seconds of load measured before each copy (default 10)
  --cow      XFS cowextsize hints to try on the source (default 8k,64k)
  --results  directory for the JSON (default bench/results)
  --overhead only the phase breakdown (checkpoint / copy / WAL / other): N clones made durable by fsync
             alternating with N by syncfs (the old way, as a control), at the first of --scales (default 20)`;

const bytes = (v: string) => {
  const m = /^(\d+)([km]?)$/i.exec(v.trim());
  if (!m) throw new Error(`bad size ${v}\n${USAGE}`);
  return Number(m[1]) * ({ '': 1, k: 1024, m: 1024 * 1024 } as Record<string, number>)[m[2]!.toLowerCase()]!;
};

export function parseOptions(argv: string[]): BenchOptions {
  const quick = argv.includes('--quick');
  const o: BenchOptions = {
    scales: quick ? [20] : [150, 600],
    quick,
    beforeS: 10,
    afterS: quick ? 10 : 30,
    settleS: quick ? 5 : 10,
    cowSizes: quick ? [8192] : [8192, 65536],
    resultsDir: 'bench/results',
    overhead: 0,
  };
  for (let i = 0; i < argv.length; i++) {
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${argv[i - 1]} needs a value\n${USAGE}`);
      return v;
    };
    switch (argv[i]) {
      case '--quick':
        break;
      case '--scales':
        o.scales = value().split(',').map(Number);
        if (o.scales.some((s) => !Number.isInteger(s) || s < 1)) throw new Error(`--scales takes positive integers\n${USAGE}`);
        break;
      case '--after':
        o.afterS = Number(value());
        break;
      case '--before':
        o.beforeS = Number(value());
        break;
      case '--cow':
        o.cowSizes = value().split(',').map(bytes);
        break;
      case '--overhead':
        o.overhead = Number(value());
        if (!Number.isInteger(o.overhead) || o.overhead < 1) throw new Error(`--overhead takes a positive integer\n${USAGE}`);
        if (!argv.includes('--scales')) o.scales = [20];
        break;
      case '--results':
        o.resultsDir = value();
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
      default:
        throw new Error(`unknown argument ${argv[i]}\n${USAGE}`);
    }
  }
  if (!(o.afterS > 0 && o.beforeS > 0)) throw new Error(`--after and --before take positive seconds\n${USAGE}`);
  return o;
}
