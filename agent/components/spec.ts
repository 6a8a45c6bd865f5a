import * as v from 'valibot';
import { type Component, componentSchema } from '../../common/contracts/component.js';
import { parseWith, SchemaError } from '../../common/schema.js';

export type { Component };

export class ComponentSpecError extends Error {
  override name = 'ComponentSpecError';
  constructor(
    readonly index: number,
    /** The component's field at fault; empty when the component itself is not a mapping. */
    readonly field: string,
    message: string,
  ) {
    super(`component ${index}${field ? ` ${field}` : ''}: ${message}`);
  }
}

/** Checks every component before anything is fetched, so a bad request changes nothing on the node. */
export function validateComponents(components: readonly unknown[]): Component[] {
  if (!Array.isArray(components)) throw new TypeError('components: expected an array');
  return components.map((c, i) => {
    try {
      return parseWith(componentSchema, c);
    } catch (err) {
      if (!(err instanceof SchemaError)) throw err;
      throw new ComponentSpecError(i, err.keyPath, err.detail);
    }
  });
}

/** The components schema, for the inputs that carry a list of them. */
export const componentsSchema = v.array(componentSchema, 'expected a list of components');

/** The URL as it may appear in logs and errors: credentials and query (presigned URLs) are hidden. */
export function displayUrl(raw: string): string {
  try {
    const u = new URL(raw);
    const hadQuery = u.search !== '';
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return hadQuery ? `${u.toString()}?…` : u.toString();
  } catch {
    return '<invalid url>';
  }
}
