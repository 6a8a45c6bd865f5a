import { randomBytes } from 'node:crypto';
import { runApiServer } from './apiserver.js';
import { DAEMON_SUBCOMMAND } from './daemon.js';
import { parseFlags, verbosity } from './flags.js';
import { INIT_BOOLS, INIT_FLAGS, initCommand } from './init.js';
import { JOIN_BOOLS, JOIN_FLAGS, joinCommand } from './join.js';
import { Rootfs } from './paths.js';
import { KubeadmError, logInvocation, say } from './phases.js';
import { RESET_BOOLS, RESET_FLAGS, resetCommand } from './reset.js';
import { TOKEN_BOOLS, TOKEN_FLAGS, tokenCommand, uploadCertsPhase } from './tokencmd.js';
import { versionCommand } from './version.js';

const USAGE = `kubeadm (test stand-in): easily bootstrap a secure Kubernetes cluster

Usage:
  kubeadm [command]

Available Commands:
  certs       Commands related to handling kubernetes certificates
  init        Run this command in order to set up the Kubernetes control plane
  join        Run this on any machine you wish to join an existing cluster
  reset       Performs a best effort revert of changes made to this host by 'kubeadm init' or 'kubeadm join'
  token       Manage bootstrap tokens
  version     Print the version of kubeadm
`;

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case DAEMON_SUBCOMMAND: {
      const p = parseFlags(rest, [], []);
      await runApiServer(new Rootfs(p.values.get('rootfs')));
      return;
    }
    case 'version': {
      const p = parseFlags(rest, ['output'], []);
      say(versionCommand(p.values.get('output')));
      return;
    }
    case 'init': {
      if (rest[0] === 'phase') {
        if (rest[1] !== 'upload-certs')
          throw new KubeadmError(
            `the kubeadm stand-in implements only "init phase upload-certs", not "${rest[1] ?? ''}"`,
          );
        return uploadCertsPhase(
          parseFlags(
            rest.slice(2),
            ['certificate-key', 'config', 'kubeconfig'],
            ['upload-certs', 'skip-certificate-key-print'],
          ),
        );
      }
      return initCommand(parseFlags(rest, INIT_FLAGS, INIT_BOOLS));
    }
    case 'join': {
      const p = parseFlags(rest, JOIN_FLAGS, JOIN_BOOLS);
      return joinCommand(p, verbosity(p));
    }
    case 'token': {
      const [sub, ...more] = rest;
      return tokenCommand(sub, parseFlags(more, TOKEN_FLAGS, TOKEN_BOOLS));
    }
    case 'certs': {
      if (rest[0] !== 'certificate-key')
        throw new KubeadmError(`the kubeadm stand-in implements only "certs certificate-key"`);
      parseFlags(rest.slice(1), [], []);
      say(randomBytes(32).toString('hex'));
      return;
    }
    case 'reset':
      return resetCommand(parseFlags(rest, RESET_FLAGS, RESET_BOOLS));
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      throw new KubeadmError(`unknown command "${cmd}" for "kubeadm"\nRun 'kubeadm --help' for usage.`);
  }
}

const argv = process.argv.slice(2);
if (argv[0] !== DAEMON_SUBCOMMAND) logInvocation(argv);
main(argv).then(
  () => {
    if (argv[0] !== DAEMON_SUBCOMMAND) process.exit(0);
  },
  (err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${msg}\nTo see the stack trace of this error execute with --v=5 or higher\n`);
    process.exit(err instanceof KubeadmError ? err.exitCode : 1);
  },
);
