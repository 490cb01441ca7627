-- The OLAP database (run by the host's sqlite3 at image build; @LINEITEMS@ sets the scale).
-- A small TPC-H-like star: customers, orders, lineitems. Values are arithmetic on the row id,
-- so the same scale always gives the same data.
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA page_size = 4096;
CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, nation INTEGER, segment TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, orderdate INTEGER, status TEXT,
                    priority INTEGER);
CREATE TABLE lineitem(order_id INTEGER, part INTEGER, quantity INTEGER, price REAL,
                      discount REAL, shipdate INTEGER, comment TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < @LINEITEMS@ / 40)
INSERT INTO customer
SELECT i, 'Customer#' || i, (i * 7) % 25,
       CASE i % 5 WHEN 0 THEN 'AUTOMOBILE' WHEN 1 THEN 'BUILDING' WHEN 2 THEN 'FURNITURE'
                  WHEN 3 THEN 'MACHINERY' ELSE 'HOUSEHOLD' END
FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < @LINEITEMS@ / 4)
INSERT INTO orders
SELECT i, 1 + (i * 7919) % (@LINEITEMS@ / 40), (i * 31) % 2555,
       CASE i % 3 WHEN 0 THEN 'F' WHEN 1 THEN 'O' ELSE 'P' END, 1 + i % 5
FROM n;
WITH RECURSIVE n(i) AS (SELECT 4 UNION ALL SELECT i + 1 FROM n WHERE i < @LINEITEMS@ + 3)
INSERT INTO lineitem
SELECT i / 4, (i * 7919) % 20000, 1 + (i * 31) % 50, ((i * 104729) % 100000) / 100.0,
       ((i * 13) % 11) / 100.0, (i * 17) % 2555,
       substr('carefully final deposits detect slyly special requests among the regular packages',
              1 + (i * 7) % 40, 20 + i % 24)
FROM n;
