"""The files of a period report: what goes in them (`rows`, `summary`) and how each format is
written (`xlsx`, `csv_zip`, `pdf`), always streamed row by row so memory stays flat."""
