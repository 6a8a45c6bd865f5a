export { discoverAll } from './discover.js';
export { type EndpointSource, endpointKey, type JoinEndpoint, parseJoinEndpoint } from './endpoint.js';
export { type JoinSourceOptions, joinServiceSources } from './join-sources.js';
export {
  advertiseJoinService,
  DEFAULT_MDNS_TIMEOUT_MS,
  JOIN_SERVICE_TYPE,
  type JoinServiceAdvertisement,
  mdnsSource,
} from './mdns.js';
export { metadataSource } from './metadata.js';
export { staticSource } from './static.js';
