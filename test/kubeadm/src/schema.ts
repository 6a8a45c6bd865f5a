import { parseDuration } from './duration.js';

/** The shape of a Go struct field as encoding/json sees it. */
export type Schema =
  | { t: 'string' }
  | { t: 'bool' }
  | { t: 'int32' }
  | { t: 'duration' }
  | { t: 'list'; of: Schema }
  | { t: 'object'; name: string; fields: Record<string, Schema> }
  | { t: 'map'; of: Schema }
  | { t: 'any' };

export const str: Schema = { t: 'string' };
export const bool: Schema = { t: 'bool' };
export const int32: Schema = { t: 'int32' };
export const duration: Schema = { t: 'duration' };
export const any: Schema = { t: 'any' };
export const list = (of: Schema): Schema => ({ t: 'list', of });
export const map = (of: Schema): Schema => ({ t: 'map', of });
export const obj = (name: string, fields: Record<string, Schema>): Schema => ({ t: 'object', name, fields });

export class DecodeError extends Error {}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'string') return 'string';
  return 'object';
}

function goType(s: Schema, version: string): string {
  switch (s.t) {
    case 'string':
      return 'string';
    case 'bool':
      return 'bool';
    case 'int32':
      return 'int32';
    case 'duration':
      return 'v1.Duration';
    case 'list':
      return `[]${goType(s.of, version)}`;
    case 'map':
      return `map[string]${goType(s.of, version)}`;
    case 'object':
      return `${version}.${s.name}`;
    case 'any':
      return 'interface {}';
  }
}

/**
 * Decodes like sigs.k8s.io/yaml + apimachinery's serializer: a wrong type is a hard error
 * ("json: cannot unmarshal ..."); every unknown field, at any depth, is dropped and listed (as the
 * strict serializer names them, "a.b[0].c") for the caller to report — kubeadm warns about them.
 */
export function decode(
  kindName: string,
  schema: Schema,
  value: unknown,
  version = 'v1beta4',
): { value: unknown; unknownFields: string[] } {
  const unknownFields: string[] = [];
  const out = walk(kindName, schema, value, '', unknownFields, version);
  return { value: out, unknownFields };
}

function walk(
  kindName: string,
  s: Schema,
  v: unknown,
  path: string,
  unknown: string[],
  version: string,
): unknown {
  if (v === null || v === undefined) return undefined;
  const bad = (): never => {
    throw new DecodeError(
      `json: cannot unmarshal ${jsonType(v)} into Go struct field ${kindName}.${path} of type ${goType(s, version)}`,
    );
  };
  switch (s.t) {
    case 'any':
      return v;
    case 'string':
      return typeof v === 'string' ? v : bad();
    case 'bool':
      return typeof v === 'boolean' ? v : bad();
    case 'int32':
      if (typeof v !== 'number' || !Number.isInteger(v)) return bad();
      if (v < -2147483648 || v > 2147483647) {
        throw new DecodeError(
          `json: cannot unmarshal number ${v} into Go struct field ${kindName}.${path} of type int32`,
        );
      }
      return v;
    case 'duration':
      if (typeof v !== 'string') return bad();
      try {
        return parseDuration(v);
      } catch (e) {
        throw new DecodeError(`${path}: ${(e as Error).message}`);
      }
    case 'list':
      if (!Array.isArray(v)) return bad();
      return v.map((item, i) => walk(kindName, s.of, item, `${path}[${i}]`, unknown, version));
    case 'map': {
      if (jsonType(v) !== 'object') return bad();
      const out: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
        out[k] = walk(kindName, s.of, item, path ? `${path}.${k}` : k, unknown, version);
      }
      return out;
    }
    case 'object': {
      if (jsonType(v) !== 'object') return bad();
      const out: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
        const p = path ? `${path}.${k}` : k;
        const fs = s.fields[k];
        if (!fs) {
          unknown.push(p);
          continue;
        }
        out[k] = walk(kindName, fs, item, p, unknown, version);
      }
      return out;
    }
  }
}
