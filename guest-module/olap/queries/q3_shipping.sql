-- Join lineitem -> orders with a date filter, group by order status.
SELECT o.status, count(*), round(sum(l.price * (1 - l.discount)), 2)
FROM lineitem l JOIN orders o ON o.id = l.order_id
WHERE l.shipdate BETWEEN 300 AND 600
GROUP BY o.status ORDER BY o.status;
