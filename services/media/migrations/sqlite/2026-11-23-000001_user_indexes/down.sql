DROP INDEX uploads_user_id;
