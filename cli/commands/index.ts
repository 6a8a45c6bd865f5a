// Every command of the CLI, in the order --help lists them.
import type { Command } from './command.js';
import { configGenerateCommand } from './config-generate.js';
import { createCommand } from './create.js';
import { initCommand } from './init.js';
import { kmsRotateCommand } from './kms-rotate.js';
import { miniDownCommand, miniUpCommand } from './mini.js';
import { releaseBuildCommand } from './release-build.js';
import { statusCommand } from './status.js';
import { terminateCommand } from './terminate.js';
import { verifyCommand } from './verify.js';
import { versionCommand } from './version.js';

export type { Command } from './command.js';

export const COMMANDS: readonly Command[] = [
  miniUpCommand,
  miniDownCommand,
  releaseBuildCommand,
  configGenerateCommand,
  createCommand,
  initCommand,
  verifyCommand,
  statusCommand,
  kmsRotateCommand,
  terminateCommand,
  versionCommand,
];
