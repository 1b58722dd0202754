export { JsonFileStore } from './json-file-store.js';
export type { JsonFileStoreOptions, Durability } from './options.js';
export { parsePythonDatetime, parsePythonTimedelta } from './legacy/python-time.js';
export { importLegacyUpgrade } from './legacy/legacy-import.js';
