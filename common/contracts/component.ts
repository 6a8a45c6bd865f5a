// A Kubernetes component as the operator configures it (sextant-conf.yaml), the init request and the join ticket
// carry it, and the agent installs it: one set of rules, checked on both sides.
import { isAbsolute, normalize } from 'node:path';
import * as v from 'valibot';
import { matching, strictObject } from '../schema.js';

const SCHEMES = ['http:', 'https:', 'file:'];

function urlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'not a valid URL';
  }
  if (!SCHEMES.includes(url.protocol)) return `scheme ${url.protocol} not allowed`;
  if (url.protocol === 'file:' && url.host !== '' && url.host !== 'localhost')
    return 'a file URL must not name a remote host';
  // credentials in a URL would end up in logs on the node
  if (url.username || url.password) return 'a user name or password in the URL is not allowed';
  return undefined;
}

function installPathProblem(p: string): string | undefined {
  if (!isAbsolute(p)) return 'not absolute';
  if (p.includes('\0')) return 'contains a NUL byte';
  if (p.split('/').includes('..')) return 'contains ".."';
  if (p === '/' || normalize(p) !== p || p.endsWith('/')) return 'not a normalized path other than /';
  return undefined;
}

const url = v.pipe(
  v.string('expected an http, https or file URL'),
  v.nonEmpty('missing'),
  v.check(
    (s) => urlProblem(s) === undefined,
    (issue) => `expected an http, https or file URL, got {got} (${urlProblem(issue.input as string)})`,
  ),
);

const installPath = v.pipe(
  v.string('expected an absolute path'),
  v.nonEmpty('missing'),
  v.check(
    (s) => installPathProblem(s) === undefined,
    (issue) =>
      `expected a normalized absolute path without "..", got {got} (${installPathProblem(issue.input as string)})`,
  ),
);

export const componentSchema = strictObject({
  url,
  /** SHA-256 of the download; either case is accepted, lowercase comes out. */
  sha256: v.pipe(
    matching(/^[0-9a-fA-F]{64}$/, '64 hex digits (the SHA-256 of the download)'),
    v.toLowerCase(),
  ),
  /** Absolute path on the node: the file itself, or the directory a tarball is unpacked into. */
  installPath,
  /** The download is a .tar.gz to unpack into installPath rather than a single executable. */
  extract: v.optional(v.boolean('expected true or false'), false),
});

export type Component = v.InferOutput<typeof componentSchema>;
