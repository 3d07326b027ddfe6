"""The audit page: the audit trail for auditors and admins, filtered, in keyset pages, exported as a streamed CSV
(the export itself audited), with the state of the audit chain."""
