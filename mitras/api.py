"""Mitra API: the beacon, public Bestie profiles, and the mitra's own presence."""

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from halobestie.accounts.permissions import IsClient, IsMitra
from halobestie.runtime.selectors import get_config
from mitras import favourites, schedule, selectors, services
from mitras.models import Gender
from mitras.rest import is_resting

# The beacon -------------------------------------------------------------------------------------


class AvailabilityOut(serializers.Serializer):
    online = serializers.IntegerField(help_text="Bestie yang online sekarang (heartbeat segar).")
    available = serializers.IntegerField(help_text="Bestie online dengan slot kosong.")
    busy = serializers.IntegerField(help_text="Bestie online yang kapasitasnya penuh.")
    available_by_language = serializers.DictField(
        child=serializers.IntegerField(),
        help_text='Bestie tersedia per kode bahasa, mis. `{"id": 4, "jv": 1}` (hanya yang ≥ 1).',
    )
    available_by_topic = serializers.DictField(
        child=serializers.IntegerField(),
        help_text='Bestie tersedia per topik, mis. `{"keluarga": 2}` (hanya yang ≥ 1).',
    )
    next_available_at = serializers.DateTimeField(
        allow_null=True,
        help_text="Saat tidak ada Bestie online: awal jam kerja terdekat Bestie mana pun (UTC); "
        "selain itu, atau bila belum ada yang mengatur jam kerja, null.",
    )
    updated_at = serializers.DateTimeField()


class AvailabilityApi(APIView):
    """The availability beacon the client app polls: how many Besties can take a chat now.
    Cached a few seconds; correct (from Postgres) when Valkey is down."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(operation_id="availability_retrieve", responses=AvailabilityOut)
    def get(self, request):
        # The cached JSON text goes out as it is: no serializer, no database.
        return HttpResponse(selectors.availability_beacon_json(), content_type="application/json")


# Public profiles --------------------------------------------------------------------------------


class WorkingIntervalSerializer(serializers.Serializer):
    weekday = serializers.IntegerField(min_value=1, max_value=7, help_text="ISO: 1 Senin … 7 Minggu.")
    start = serializers.CharField(help_text="HH:MM waktu Asia/Jakarta, mis. `09:00`.")
    end = serializers.CharField(
        help_text="HH:MM waktu Asia/Jakarta, setelah `start`; `24:00` = tengah malam."
    )


class MitraPublicOut(serializers.Serializer):
    id = serializers.IntegerField()
    display_name = serializers.CharField()
    bio = serializers.CharField()
    avatar_url = serializers.CharField()
    topics = serializers.ListField(child=serializers.CharField())
    languages = serializers.ListField(child=serializers.CharField())
    gender = serializers.ChoiceField(choices=Gender.choices)
    rating_average = serializers.FloatField(allow_null=True)
    rating_count = serializers.IntegerField()
    is_online = serializers.BooleanField(help_text="Online sekarang: menyala dan heartbeat segar.")
    is_available = serializers.BooleanField(help_text="Online dan masih punya slot kosong.")
    working_hours = WorkingIntervalSerializer(
        many=True, help_text="Jam kerja mingguan (Asia/Jakarta); kosong bila belum diatur."
    )


def _public(mitra, presence):
    return {
        "id": mitra.id,
        "display_name": mitra.display_name,
        "bio": mitra.bio,
        "avatar_url": mitra.avatar_url,
        "topics": mitra.topics,
        "languages": mitra.languages,
        "gender": mitra.gender,
        "rating_average": mitra.rating_average,
        "rating_count": mitra.rating_count,
        "is_online": presence.is_present,
        "is_available": presence.is_available,
        "working_hours": [interval.as_json() for interval in schedule.schedule_of(mitra)],
    }


class MitraListQuery(serializers.Serializer):
    topic = serializers.CharField(required=False, max_length=50, help_text="Hanya yang punya topik ini.")
    language = serializers.CharField(required=False, max_length=8, help_text="Kode bahasa, mis. `id`.")
    available = serializers.BooleanField(
        required=False, default=False, help_text="`true`: hanya yang bisa menerima chat sekarang."
    )


class MitraListApi(GenericAPIView):
    """Public Bestie profiles (deactivated ones never), online first, paginated."""

    permission_classes = [AllowAny]
    authentication_classes = []
    pagination_class = LimitOffsetPagination
    serializer_class = MitraPublicOut

    @extend_schema(
        operation_id="mitras_list", parameters=[MitraListQuery], responses=MitraPublicOut(many=True)
    )
    def get(self, request):
        query = MitraListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        mitras = selectors.mitra_list_public(**query.validated_data)
        page = self.paginate_queryset(mitras)
        presence = selectors.presence_of(page)
        data = MitraPublicOut([_public(m, presence[m.id]) for m in page], many=True).data
        return self.get_paginated_response(data)


class MitraDetailApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(operation_id="mitras_retrieve", responses=MitraPublicOut)
    def get(self, request, mitra_id):
        mitra = selectors.mitra_get_public(mitra_id=mitra_id)
        return Response(MitraPublicOut(_public(mitra, selectors.mitra_presence(mitra=mitra))).data)


# The mitra's own presence -----------------------------------------------------------------------


class MitraPresenceOut(serializers.Serializer):
    is_online = serializers.BooleanField(help_text="Saklar online milik mitra.")
    is_present = serializers.BooleanField(help_text="Menyala dan heartbeat lebih muda dari TTL.")
    is_available = serializers.BooleanField(help_text="Hadir dan masih punya slot kosong.")
    load = serializers.IntegerField(help_text="Sesi yang sedang menempati mitra (ditawarkan + aktif).")
    capacity = serializers.IntegerField()
    online_since = serializers.DateTimeField(allow_null=True)
    last_heartbeat_at = serializers.DateTimeField(allow_null=True)
    heartbeat_ttl_seconds = serializers.IntegerField(help_text="Kirim heartbeat lebih sering dari ini.")
    rest_until = serializers.DateTimeField(
        allow_null=True,
        help_text="Sedang istirahat (tanpa tawaran baru) sampai saat ini; null bila tidak. "
        "Sesi yang berjalan tetap berjalan.",
    )
    rest_reason = serializers.CharField(
        help_text="`crisis` (pendinginan setelah sesi krisis), `break` (jeda setelah banyak sesi "
        "beruntun), atau kosong."
    )
    sessions_in_row = serializers.IntegerField(help_text="Sesi beruntun sejak jeda terakhir.")


def _presence(mitra, presence):
    return {
        "is_online": presence.is_online,
        "is_present": presence.is_present,
        "is_available": presence.is_available,
        "load": presence.load,
        "capacity": mitra.capacity,
        "online_since": mitra.online_since,
        "last_heartbeat_at": presence.last_heartbeat_at,
        "heartbeat_ttl_seconds": get_config().heartbeat_ttl_seconds,
        **_rest(mitra),
    }


def _rest(mitra):
    resting = is_resting(mitra, now=timezone.now())
    return {
        "rest_until": mitra.rest_until if resting else None,
        "rest_reason": mitra.rest_reason if resting else "",
        "sessions_in_row": mitra.sessions_in_row,
    }


class MitraSelfOut(MitraPublicOut, MitraPresenceOut):
    phone = serializers.CharField()
    is_online = serializers.BooleanField(help_text="Saklar online milik mitra.")


class MitraMeApi(APIView):
    """The mitra's own full profile with its presence, load and capacity."""

    permission_classes = [IsMitra]

    @extend_schema(operation_id="mitra_me_retrieve", responses=MitraSelfOut)
    def get(self, request):
        mitra = request.user.mitra
        presence = selectors.mitra_presence(mitra=mitra)
        data = {**_public(mitra, presence), **_presence(mitra, presence), "phone": request.user.phone}
        return Response(MitraSelfOut(data).data)


class MitraStatusIn(serializers.Serializer):
    online = serializers.BooleanField()


class MitraStatusApi(APIView):
    """Switch online or offline. Online counts as a heartbeat; stay present by sending
    heartbeats more often than `heartbeat_ttl_seconds`."""

    permission_classes = [IsMitra]

    @extend_schema(operation_id="mitra_status_update", request=MitraStatusIn, responses=MitraPresenceOut)
    def post(self, request):
        body = MitraStatusIn(data=request.data)
        body.is_valid(raise_exception=True)
        mitra = services.mitra_set_online(mitra=request.user.mitra, is_online=body.validated_data["online"])
        return Response(MitraPresenceOut(_presence(mitra, selectors.mitra_presence(mitra=mitra))).data)


class HeartbeatOut(serializers.Serializer):
    ok = serializers.BooleanField()
    ttl_seconds = serializers.IntegerField(help_text="Heartbeat berikutnya harus datang sebelum ini lewat.")


class MitraHeartbeatApi(APIView):
    """The mitra app is alive (the WebSocket `heartbeat` frame does the same)."""

    permission_classes = [IsMitra]

    @extend_schema(
        operation_id="mitra_heartbeat_create",
        request=None,
        responses={200: OpenApiResponse(HeartbeatOut)},
    )
    def post(self, request):
        services.mitra_heartbeat(mitra=request.user.mitra)
        return Response({"ok": True, "ttl_seconds": get_config().heartbeat_ttl_seconds})


# The mitra's working hours ----------------------------------------------------------------------


class WorkingHoursOut(serializers.Serializer):
    timezone = serializers.CharField(help_text="Selalu `Asia/Jakarta`: jam di bawah ini waktu setempat.")
    intervals = WorkingIntervalSerializer(many=True)
    is_within_working_hours = serializers.BooleanField(help_text="Sekarang di dalam jam kerja.")
    next_start_at = serializers.DateTimeField(
        allow_null=True, help_text="Awal jam kerja berikutnya (UTC); null bila jadwal kosong."
    )


class WorkingHoursIn(serializers.Serializer):
    intervals = WorkingIntervalSerializer(
        many=True, help_text="Seluruh jadwal mingguan (menggantikan yang lama); `[]` mengosongkan."
    )


class MitraWorkingHoursApi(APIView):
    """The mitra's weekly working hours (Asia/Jakarta). Online outside them still brings offers
    (being online is consent); inside them the Bestie ranks before free Besties outside theirs."""

    permission_classes = [IsMitra]

    @extend_schema(operation_id="mitra_working_hours_retrieve", responses=WorkingHoursOut)
    def get(self, request):
        weekly = schedule.schedule_of(request.user.mitra)
        return Response(WorkingHoursOut(schedule.schedule_out(weekly, now=timezone.now())).data)

    @extend_schema(
        operation_id="mitra_working_hours_update", request=WorkingHoursIn, responses=WorkingHoursOut
    )
    def put(self, request):
        # The service validates the raw JSON itself (types, clocks, overlaps): one error code.
        raw = request.data.get("intervals") if isinstance(request.data, dict) else None
        weekly = schedule.working_hours_replace(mitra=request.user.mitra, intervals=raw)
        return Response(WorkingHoursOut(schedule.schedule_out(weekly, now=timezone.now())).data)


# A client's favourite Besties -------------------------------------------------------------------


class FavouriteOut(serializers.Serializer):
    mitra_id = serializers.IntegerField()
    display_name = serializers.CharField()
    avatar_url = serializers.CharField()
    notify_online = serializers.BooleanField(
        help_text="Kirim push (maks. sekali sehari) saat Bestie ini online."
    )
    created_at = serializers.DateTimeField()


def _favourite(favourite):
    return {
        "mitra_id": favourite.mitra_id,
        "display_name": favourite.mitra.display_name,
        "avatar_url": favourite.mitra.avatar_url,
        "notify_online": favourite.notify_online,
        "created_at": favourite.created_at,
    }


class FavouriteIn(serializers.Serializer):
    mitra = serializers.IntegerField(min_value=1)
    notify_online = serializers.BooleanField(required=False, default=False)


class FavouriteListCreateApi(APIView):
    """The client's favourite Besties (preferred in assignment)."""

    permission_classes = [IsClient]

    @extend_schema(operation_id="favourites_list", responses=FavouriteOut(many=True))
    def get(self, request):
        return Response([_favourite(f) for f in favourites.favourites_of(client=request.user)])

    @extend_schema(operation_id="favourites_create", request=FavouriteIn, responses={201: FavouriteOut})
    def post(self, request):
        body = FavouriteIn(data=request.data)
        body.is_valid(raise_exception=True)
        favourite = favourites.favourite_add(
            client=request.user,
            mitra_id=body.validated_data["mitra"],
            notify_online=body.validated_data["notify_online"],
        )
        return Response(_favourite(favourite), status=201)


class FavouriteDetailApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(operation_id="favourites_destroy", request=None, responses={204: None})
    def delete(self, request, mitra_id):
        favourites.favourite_remove(client=request.user, mitra_id=mitra_id)
        return Response(status=204)
