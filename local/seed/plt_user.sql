-- Seed data for database plt_user. Idempotent: fixed ids, REPLACE INTO only.
-- See README.md for which row covers which case.
-- Requested tags in seed.Params: 3 and 10.
--   user  99: tag 3                    (user id sorts after 101..111 as a string, before as a number)
--   user 101: tags 10, 4, 3            (10 inserted before 3; tag_ids must be "3;10", tag 4 not listed)
--   user 102: tag 3 twice              (duplicated (user_id, tag_id) row)
--   user 103: tag 10 only
--   user 104: tags 4, 30 only          (excluded: none of the requested tags; 30 is not 3)
--   user 105: no tag rows at all       (excluded)
--   user 106: tag 3                    (withdrawals but no payments)
--   user 107: tag 10                   (withdrawals only outside the range: no rows)
--   user 108: tags 3, 10               (no withdrawals at all: no rows)
--   user 109: tags 10, 3, 10           (both tags, tag 10 duplicated)
--   user 110: tag 3
--   user 111: tag 10
--   user 112: tag 10                   (hostile currency/status values: formula-injection escaping)
REPLACE INTO vs_user_tag_relation (id, user_id, tag_id, created_at) VALUES
  (1, 101, 10, '2025-06-01 00:00:00'),
  (2, 101, 4, '2025-06-01 00:00:01'),
  (3, 101, 3, '2025-06-01 00:00:02'),
  (4, 102, 3, '2025-06-02 00:00:00'),
  (5, 102, 3, '2025-06-02 00:00:00'),
  (6, 103, 10, '2025-06-03 00:00:00'),
  (7, 104, 4, '2025-06-04 00:00:00'),
  (8, 104, 30, '2025-06-04 00:00:01'),
  (9, 106, 3, '2025-06-06 00:00:00'),
  (10, 107, 10, '2025-06-07 00:00:00'),
  (11, 108, 3, '2025-06-08 00:00:00'),
  (12, 108, 10, '2025-06-08 00:00:01'),
  (13, 109, 10, '2025-06-09 00:00:00'),
  (14, 109, 3, '2025-06-09 00:00:01'),
  (15, 109, 10, '2025-06-09 00:00:02'),
  (16, 110, 3, '2025-06-10 00:00:00'),
  (17, 111, 10, '2025-06-11 00:00:00'),
  (18, 99, 3, '2025-06-12 00:00:00'),
  (19, 112, 10, '2025-06-13 00:00:00');
