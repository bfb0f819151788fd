-- A doctor's own price (kopecks), for clinics that price per doctor: their free slots and every
-- new one (published by hand without a price, or from Bitrix24) take it. NULL: each slot has its
-- own price (per slot), Bitrix24's slots the configured bitrix24.price_kopecks.
ALTER TABLE doctors ADD COLUMN price_kopecks BIGINT;
