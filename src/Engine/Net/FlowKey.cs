using System.Net;

namespace KtConnect.Engine.Net;

/// <summary>A TCP or UDP flow as the client sent it: Source is the client, Destination where it connected.</summary>
public readonly record struct FlowKey(UInt128 Source, UInt128 Destination, ushort SourcePort, ushort DestinationPort, bool IsV6)
{
    public IPEndPoint SourceEndPoint => new(IpPacket.ToAddress(Source, IsV6), SourcePort);

    public IPEndPoint DestinationEndPoint => new(IpPacket.ToAddress(Destination, IsV6), DestinationPort);

    public override string ToString() => $"{SourceEndPoint} -> {DestinationEndPoint}";
}
