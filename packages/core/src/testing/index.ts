export { describeProgressStore, EventFactory } from './conformance.js';
export type { TestApi, StoreFactory, ConformanceOptions } from './conformance.js';
