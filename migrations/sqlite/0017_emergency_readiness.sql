-- Emergency readiness: the numbers not ready for an emergency call (assigned without a
-- location, or whose last location update failed) are listed in number order from an index of
-- them alone. The listing repeats the condition word for word.
CREATE INDEX phone_numbers_unready ON phone_numbers (tenant_id, phone_number)
    WHERE (assigned_to IS NOT NULL AND emergency_location_id IS NULL)
        OR activation_state = 'UPDATE_FAILED';
