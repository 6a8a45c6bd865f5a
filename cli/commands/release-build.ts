// sextant release build [DIR]
import { buildRelease } from '../release/build.js';
import { defineCommand } from './command.js';
import type { CommandContext } from './context.js';

export interface ReleaseBuildOptions {
  dir?: string;
}

export async function releaseBuild(ctx: CommandContext, options: ReleaseBuildOptions): Promise<number> {
  const dir = await buildRelease({
    ...(options.dir !== undefined ? { dir: options.dir } : {}),
    onLine: (l) => ctx.stderr.write(`${l}\n`),
    env: ctx.env,
  });
  ctx.stdout.write(`${dir}\n`);
  return 0;
}

export const releaseBuildCommand = defineCommand<ReleaseBuildOptions>({
  path: ['release', 'build'],
  summary: 'build a release directory: node image, signed measurements, Kubernetes components',
  usage: 'sextant release build [DIR]',
  help: [
    'Builds (or finds cached) the Kubernetes components and images from their Go modules, the node image and its',
    'measurements (a reference boot under TCG), signs them with the release key, and writes DIR: image/,',
    'measurements.json (+ .sig, measurements.pub.pem), components/ and release.json (+ .sig), which lists every',
    'component with its SHA-256. Default DIR: /var/cache/sextant/releases/<version>-<input hash>. Prints DIR.',
    'Use it with: sextant config generate qemu --release DIR. Needs root; cold about 15-25 min on 2 cores.',
  ].join('\n'),
  options: {},
  maxPositionals: 1,
  parse: ({ positionals }) => (positionals[0] !== undefined ? { dir: positionals[0] } : {}),
  run: (ctx, options) => releaseBuild(ctx, options),
});
