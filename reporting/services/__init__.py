"""Services of the reporting app, split by capability: `rollups` (daily rollup rows), `reports`
(period reports and their files), `periodic` (weekly and monthly reports emailed to finance)."""
