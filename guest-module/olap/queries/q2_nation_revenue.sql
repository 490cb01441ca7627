-- Join orders -> customers, group by nation.
SELECT c.nation, count(*), sum(o.priority)
FROM orders o JOIN customer c ON c.id = o.customer
GROUP BY c.nation ORDER BY c.nation;
