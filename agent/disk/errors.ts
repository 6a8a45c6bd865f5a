// The disk's failures that callers outside agent/disk act on, in a file of their own: importing them loads no
// libcryptsetup.

/** The key offered does not open this disk; nothing on the disk was changed. */
export class WrongDiskKeyError extends Error {
  override name = 'WrongDiskKeyError';
  constructor(readonly disk: string) {
    super(`the disk key does not open ${disk} (no keyslot matched); the disk was left as it was`);
  }
}
