/** A state disk's LUKS UUID as the node sends it and the JoinService records it: lower-case RFC 4122 text. */
export const DISK_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
