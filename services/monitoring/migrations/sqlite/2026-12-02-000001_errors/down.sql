DROP TABLE error_events;
DROP TABLE error_group_users;
DROP TABLE error_groups;
DROP TABLE projects;
