// The agent's kill points (e.g. `init:bootstrapped`) use the hook the CLI's share.
export { faultPoint } from '../common/fault-hook.js';
