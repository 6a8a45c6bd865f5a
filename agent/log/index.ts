export { isSecretKey, journalFieldName, REDACTED } from './fields.js';
export {
  createLogger,
  DEFAULT_IDENTIFIER,
  type LogFields,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  type LogSink,
  runningUnderSystemd,
} from './logger.js';
