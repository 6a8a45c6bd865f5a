// The operator workspace: one directory per cluster and the files in it.
export { decodeBase64 } from '../../common/base64.js';
export { INIT_SECRET_BYTES, initSecretHash, loadInitSecret, loadOrCreateInitSecret } from './init-secret.js';
export { loadMasterSecret, loadOrCreateMasterSecret, saveMasterSecret } from './master-secret.js';
export {
  ADMIN_CONF_FILE,
  INIT_SECRET_FILE,
  MASTER_SECRET_FILE,
  STATE_FILE,
  WorkspaceError,
  type WorkspacePaths,
  workspacePaths,
} from './paths.js';
export { type ClusterState, formatState, loadState, parseState, saveState, validateState } from './state.js';
export { assertNotInitialized, isInitialized, openWorkspace, writeAdminConf } from './workspace.js';
