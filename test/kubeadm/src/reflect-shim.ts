// @peculiar/x509 pulls in tsyringe, which refuses to load without the Reflect metadata API.
// reflect-metadata is not a dependency of this repository, so the stand-in carries the few
// calls tsyringe makes. Import this module before @peculiar/x509.
type MetaMap = Map<unknown, unknown>;
const store = new WeakMap<object, Map<string | symbol | undefined, MetaMap>>();

function metaFor(target: object, prop: string | symbol | undefined, create: boolean): MetaMap | undefined {
  let byProp = store.get(target);
  if (!byProp) {
    if (!create) return undefined;
    byProp = new Map();
    store.set(target, byProp);
  }
  let meta = byProp.get(prop);
  if (!meta && create) {
    meta = new Map();
    byProp.set(prop, meta);
  }
  return meta;
}

const R = Reflect as unknown as Record<string, unknown>;
if (typeof R.getMetadata !== 'function') {
  const getOwn = (key: unknown, target: object, prop?: string | symbol) =>
    metaFor(target, prop, false)?.get(key);
  const get = (key: unknown, target: object, prop?: string | symbol): unknown => {
    for (let t: object | null = target; t; t = Object.getPrototypeOf(t)) {
      const v = metaFor(t, prop, false)?.get(key);
      if (v !== undefined) return v;
    }
    return undefined;
  };
  R.defineMetadata = (key: unknown, value: unknown, target: object, prop?: string | symbol) => {
    metaFor(target, prop, true)!.set(key, value);
  };
  R.getOwnMetadata = getOwn;
  R.getMetadata = get;
  R.hasMetadata = (key: unknown, target: object, prop?: string | symbol) =>
    get(key, target, prop) !== undefined;
  R.hasOwnMetadata = (key: unknown, target: object, prop?: string | symbol) =>
    getOwn(key, target, prop) !== undefined;
  R.metadata = (key: unknown, value: unknown) => (target: object, prop?: string | symbol) => {
    metaFor(target, prop, true)!.set(key, value);
  };
}

export {};
