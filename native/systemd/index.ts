export { JOURNAL_SOCKET, journalAvailable, journalUnavailableReason, sendJournal } from './journal.js';
export { loadSystemd } from './library.js';
export { notify } from './notify.js';
