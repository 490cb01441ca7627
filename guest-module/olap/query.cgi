#!/bin/sh
# OLAP CGI for busybox httpd: GET /cgi-bin/query?NAME runs /etc/kscope/queries/NAME.sql with
# sqlite3 over the read-only database on the data disk and returns its rows as text.
# GET /cgi-bin/query?list returns the query names, one per line.
q=$QUERY_STRING
case $q in
  list)
    printf 'Content-Type: text/plain\r\n\r\n'
    for f in /etc/kscope/queries/*.sql; do basename "$f" .sql; done
    exit 0 ;;
  '' | *[!a-z0-9_]*)
    printf 'Status: 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nbad query name\n'
    exit 0 ;;
esac
f=/etc/kscope/queries/$q.sql
if [ ! -f "$f" ]; then
  printf 'Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno such query\n'
  exit 0
fi
# immutable=1: the disk is read-only, so sqlite must not try to lock or journal. The result is
# collected first so that a failing query can still be answered with a 500 status.
out=/tmp/query.$$
if /usr/bin/sqlite3 -batch -bail 'file:/data/olap.db?immutable=1' < "$f" > $out 2>&1; then
  printf 'Content-Type: text/plain\r\n\r\n'
else
  printf 'Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n'
fi
cat $out
rm -f $out
