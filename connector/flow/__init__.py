"""The invoice flow: admission (journal, SAT's rules, seal), PAC round trips with many in
flight, retries, recovery by referencia and delivery. It works on invoices and their outcomes
and does not know whether they came from a file or a table row: the source kinds
(``connector.adapters.files``, ``connector.adapters.table.runner``) supply the invoices and
write each outcome back their own way."""
