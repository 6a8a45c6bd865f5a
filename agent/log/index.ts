export { journalFieldName, REDACTED } from './fields.js';
export { createLogger, type Logger, type LogSink } from './logger.js';
