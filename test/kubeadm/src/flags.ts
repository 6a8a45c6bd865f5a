import { KubeadmError } from './phases.js';

export interface Parsed {
  positional: string[];
  values: Map<string, string>;
  bools: Set<string>;
}

/**
 * Cobra/pflag-style parsing: --name=value, --name value, -v N / -vN, bools as --flag or --flag=true.
 * `valueFlags` take a value; `boolFlags` do not. Anything else is "unknown flag", as cobra says.
 */
export function parseFlags(argv: string[], valueFlags: string[], boolFlags: string[]): Parsed {
  const out: Parsed = { positional: [], values: new Map(), bools: new Set() };
  const vals = new Set([...valueFlags, 'rootfs', 'v']);
  const bools = new Set([...boolFlags, 'help']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.positional.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      out.positional.push(a);
      continue;
    }
    let name: string;
    let value: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      value = eq >= 0 ? a.slice(eq + 1) : undefined;
    } else {
      name = a.slice(1, 2);
      value = a.length > 2 ? a.slice(2).replace(/^=/, '') : undefined;
      if (name === 'f') name = 'force';
      if (name === 'o') name = 'output';
    }
    if (bools.has(name)) {
      if (value !== undefined && value !== 'true' && value !== 'false') {
        throw new KubeadmError(
          `invalid argument "${value}" for "--${name}" flag: strconv.ParseBool: parsing "${value}": invalid syntax`,
        );
      }
      if (value !== 'false') out.bools.add(name);
      continue;
    }
    if (vals.has(name)) {
      if (value === undefined) {
        value = argv[++i];
        if (value === undefined) throw new KubeadmError(`flag needs an argument: --${name}`);
      }
      out.values.set(name, value);
      continue;
    }
    throw new KubeadmError(`unknown flag: ${a.split('=')[0]}`);
  }
  return out;
}

export function verbosity(p: Parsed): number {
  const v = p.values.get('v');
  return v === undefined ? 0 : Number(v) || 0;
}
