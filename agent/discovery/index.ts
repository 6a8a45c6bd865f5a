export { discoverAll } from './discover.js';

export { joinServiceSources } from './join-sources.js';
export { advertiseJoinService, mdnsSource } from './mdns.js';
export { metadataSource } from './metadata.js';
export { staticSource } from './static.js';
