"""Session API routes under /api/v1/."""

from django.urls import path

from sessions_app import api, booking_api

urlpatterns = [
    path("sessions", api.SessionListCreateApi.as_view(), name="sessions"),
    path("sessions/<uuid:session_id>", api.SessionDetailApi.as_view(), name="session-detail"),
    path("sessions/<uuid:session_id>/accept", api.SessionAcceptApi.as_view(), name="session-accept"),
    path("sessions/<uuid:session_id>/decline", api.SessionDeclineApi.as_view(), name="session-decline"),
    path("sessions/<uuid:session_id>/end", api.SessionEndApi.as_view(), name="session-end"),
    path("sessions/<uuid:session_id>/extend", api.SessionExtendApi.as_view(), name="session-extend"),
    path("sessions/<uuid:session_id>/rating", api.SessionRatingApi.as_view(), name="session-rating"),
    path("sessions/<uuid:session_id>/report", api.SessionReportApi.as_view(), name="session-report"),
    path("sessions/<uuid:session_id>/block", api.SessionBlockApi.as_view(), name="session-block"),
    path("sessions/<uuid:session_id>/messages", api.SessionMessagesApi.as_view(), name="session-messages"),
    path("realtime/ticket", api.RealtimeTicketApi.as_view(), name="realtime-ticket"),
    path("mitra/earnings", api.EarningsApi.as_view(), name="mitra-earnings"),
    # Booked sessions (sessions_app/bookings.py).
    path("mitras/<int:mitra_id>/slots", booking_api.MitraSlotsApi.as_view(), name="mitra-slots"),
    path("bookings", booking_api.BookingListCreateApi.as_view(), name="bookings"),
    path("bookings/<uuid:booking_id>", booking_api.BookingDetailApi.as_view(), name="booking-detail"),
    path("bookings/<uuid:booking_id>/cancel", booking_api.BookingCancelApi.as_view(), name="booking-cancel"),
    path(
        "bookings/<uuid:booking_id>/reschedule",
        booking_api.BookingRescheduleApi.as_view(),
        name="booking-reschedule",
    ),
    path(
        "bookings/<uuid:booking_id>/fallback",
        booking_api.BookingFallbackApi.as_view(),
        name="booking-fallback",
    ),
    path("mitra/bookings", booking_api.MitraBookingListApi.as_view(), name="mitra-bookings"),
    path(
        "mitra/bookings/<uuid:booking_id>/cancel",
        booking_api.MitraBookingCancelApi.as_view(),
        name="mitra-booking-cancel",
    ),
]
