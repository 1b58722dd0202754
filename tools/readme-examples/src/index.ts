export { extractBlocks, NOT_CHECKED_MARKER, type ExampleBlock, type ExtractProblem, type Extracted } from './extract.js';
export { checkReadmes, findReadmes, formatProblem, readReadmes, type CheckResult, type Problem, type Readme } from './check.js';
