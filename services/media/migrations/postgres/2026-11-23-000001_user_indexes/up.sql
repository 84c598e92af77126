-- Account erasure finds a user's tus uploads by user id. (Media rows have media_user_id and
-- histogram rows a primary key that starts with user_id.)
CREATE INDEX uploads_user_id ON uploads (user_id);
